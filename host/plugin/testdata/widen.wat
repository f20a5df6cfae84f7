;; widen: a sampler (sdk/ABI.md §6.2) in processor mode that answers each
;; row by its candidate count: fewer than 4 asks the host to widen the row
;; (out_token −2); 4 or more keeps the pre-filled output logits (−1). A
;; first row at position 9 answers out_token −3, which no answer may be.
;; Its memory (64 pages, 4 MiB) holds the arena of one row of the most
;; candidates a step may have (2^18); ulan_alloc hands out the one buffer
;; at 65536.
(module
  (memory (export "memory") 64)
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 4128768))
      (then (i32.const 65536))
      (else (i32.const 0))))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param i32 i32) (result i32) (i32.const 0))
  ;; a handle of its own for each sequence (1, 2, …)
  (global $next (mut i64) (i64.const 0))
  (func (export "smp_open") (param i32 i32) (result i64)
    (global.set $next (i64.add (global.get $next) (i64.const 1)))
    (global.get $next))
  (func (export "smp_close") (param i64))
  (func (export "smp_step") (param $arena i32) (param $size i32) (result i32)
    (local $rows i32) (local $i i32) (local $rec i32)
    (local.set $rows (i32.load (local.get $arena)))
    (if (i32.eq (i32.load offset=28 (local.get $arena)) (i32.const 9)) ;; row 0's position
      (then (i32.store offset=44 (local.get $arena) (i32.const -3)) (return (i32.const 0))))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        ;; row i's record: 16 + 32i; its candidate count at +8, out_token at +28
        (local.set $rec (i32.add (i32.add (local.get $arena) (i32.const 16))
          (i32.mul (local.get $i) (i32.const 32))))
        (if (i32.lt_s (i32.load offset=8 (local.get $rec)) (i32.const 4))
          (then (i32.store offset=28 (local.get $rec) (i32.const -2))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row)))
    (i32.const 0)))
