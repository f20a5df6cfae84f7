;; rehook: hook.wat with ulan_reconfigure, counting what configured it. The
;; config's first key's first letter is its mark (byte 2 of {"x…": …}):
;; ulan_init and ulan_reconfigure refuse "r" (status 1) and ulan_reconfigure
;; answers "u" with StatusUnsupported (4), changing nothing. hook_open returns
;; mark | inits<<8 | reconfigures<<16, so a test sees which config an instance
;; holds and how it got it.
(module
  (memory (export "memory") 2)
  (global $next (mut i32) (i32.const 1024))
  (global $mark (mut i32) (i32.const 0))
  (global $inits (mut i32) (i32.const 0))
  (global $reconfs (mut i32) (i32.const 0))
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param $ptr i32) (param $len i32) (result i32)
    (local $c i32)
    (local.set $c (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))))
    (if (i32.eq (local.get $c) (i32.const 114)) (then (return (i32.const 1))))
    (global.set $mark (local.get $c))
    (global.set $inits (i32.add (global.get $inits) (i32.const 1)))
    (i32.const 0))
  (func (export "ulan_reconfigure") (param $ptr i32) (param $len i32) (result i32)
    (local $c i32)
    (local.set $c (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))))
    (if (i32.eq (local.get $c) (i32.const 114)) (then (return (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 117)) (then (return (i32.const 4))))
    (global.set $mark (local.get $c))
    (global.set $reconfs (i32.add (global.get $reconfs) (i32.const 1)))
    (i32.const 0))
  (func (export "hook_open") (param i32 i32) (result i64)
    (i64.extend_i32_u
      (i32.or (global.get $mark)
        (i32.or (i32.shl (global.get $inits) (i32.const 8))
                (i32.shl (global.get $reconfs) (i32.const 16))))))
  (func (export "hook_delta") (param i64 i32 i32 i32 i32 i32) (result i64) (i64.const 0))
  (func (export "hook_end") (param i64 i32) (result i64) (i64.const 0))
  (func (export "hook_close") (param i64)))
