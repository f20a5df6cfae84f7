;; any: the smallest module with the exports of all three kinds (sdk/ABI.md §6),
;; so that the manifest a test embeds decides its kind. A bump allocator serves
;; ulan_alloc; ulan_init refuses, through set_error, a config whose first key
;; starts with "r" ({"refuse": ...}); every kind export answers UNSUPPORTED or
;; nothing.
(module
  (import "ulan_v1" "set_error" (func $set_error (param i32 i32)))
  (memory (export "memory") 2)
  (global $next (mut i32) (i32.const 1024))
  (data (i32.const 16) "the test plugin refuses this config")
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param $ptr i32) (param $len i32) (result i32)
    (if (result i32)
      (i32.and
        (i32.ge_u (local.get $len) (i32.const 3))
        (i32.eq (i32.load8_u (i32.add (local.get $ptr) (i32.const 2))) (i32.const 114)))
      (then (call $set_error (i32.const 16) (i32.const 35)) (i32.const 1))
      (else (i32.const 0))))
  (func (export "tok_info") (result i64) (i64.const -4))
  (func (export "tok_vocab") (param i32 i32) (result i64) (i64.const -4))
  (func (export "tok_encode") (param i32 i32 i32) (result i64) (i64.const -4))
  (func (export "tok_decode") (param i32 i32 i32) (result i64) (i64.const -4))
  (func (export "smp_open") (param i32 i32) (result i64) (i64.const 0))
  (func (export "smp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "smp_close") (param i64))
  (func (export "hook_open") (param i32 i32) (result i64) (i64.const 0))
  (func (export "hook_delta") (param i64 i32 i32 i32 i32 i32) (result i64) (i64.const 0))
  (func (export "hook_end") (param i64 i32) (result i64) (i64.const 0))
  (func (export "hook_close") (param i64)))
