;; command: a wasip1 command module (only _start), which ulan refuses.
(module
  (memory (export "memory") 1)
  (func (export "_start"))
  (func (export "ulan_abi_1")))
