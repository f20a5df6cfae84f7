;; ok: a well-behaved reactor plugin. _initialize stores 42 so calls can
;; see it ran; add returns a+b+initialised-flag; hello logs through the host.
(module
  (import "ulan_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1 16)
  (global $init (mut i32) (i32.const 0))
  (data (i32.const 16) "hello from ok")
  (func (export "_initialize") (global.set $init (i32.const 42)))
  (func (export "ulan_abi_1"))
  (func (export "initialised") (result i32) (global.get $init))
  (func (export "noop"))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  (func (export "hello") (result i32)
    (call $log (i32.const 1) (i32.const 16) (i32.const 13))
    (i32.const 0)))
