;; statushook: a hook (sdk/ABI.md §6.3) whose hook_delta answers every delta
;; with error status 5, after set_error("refused"): the plugin runs and
;; refuses, which the host reports as a StatusError. hook_open gives handle
;; 1; ulan_alloc hands out the one buffer at 16384.
(module
  (import "ulan_v1" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "refused")
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 32768))
      (then (i32.const 16384))
      (else (i32.const 0))))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "hook_open") (param i32 i32) (result i64) (i64.const 1))
  (func (export "hook_delta") (param i64 i32 i32 i32 i32 i32) (result i64)
    (call $set_error (i32.const 1024) (i32.const 7))
    (i64.const -5))
  (func (export "hook_end") (param i64 i32) (result i64) (i64.const -5))
  (func (export "hook_close") (param i64)))
