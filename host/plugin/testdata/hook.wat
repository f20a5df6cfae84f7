;; hook: the smallest module with a hook's exports (sdk/ABI.md §6.3). A bump
;; allocator serves ulan_alloc; ulan_init refuses a config whose first key
;; starts with "r" ({"refuse": ...}); hook_delta passes everything.
(module
  (memory (export "memory") 2)
  (global $next (mut i32) (i32.const 1024))
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param $ptr i32) (param $len i32) (result i32)
    (if (result i32) (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))) (i32.const 114))
      (then (i32.const 1))
      (else (i32.const 0))))
  (func (export "hook_open") (param i32 i32) (result i64) (i64.const 7))
  (func (export "hook_delta") (param i64 i32 i32 i32 i32 i32) (result i64) (i64.const 0))
  (func (export "hook_end") (param i64 i32) (result i64) (i64.const 0))
  (func (export "hook_close") (param i64)))
