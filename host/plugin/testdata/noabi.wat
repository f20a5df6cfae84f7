;; noabi: a reactor without the ABI marker export.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")))
