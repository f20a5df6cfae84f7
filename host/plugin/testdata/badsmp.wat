;; badsmp: a sampler (sdk/ABI.md §6.2) in selector mode whose smp_step
;; answers as the first row's position says:
;;   0  selects the row's first candidate (well behaved)
;;   1  selects token 1000000, which is not a candidate
;;   2  selects token -7
;;   3  writes a NaN output logit
;;   4  spins forever
;; ulan_alloc hands out the one buffer at 16384 (the batch's arena).
(module
  (memory (export "memory") 2)
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 65536))
      (then (i32.const 16384))
      (else (i32.const 0))))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "smp_open") (param i32 i32) (result i64) (i64.const 1))
  (func (export "smp_close") (param i64))
  (func (export "smp_step") (param $arena i32) (param $size i32) (result i32)
    (local $rows i32) (local $k i32) (local $ids i32) (local $outs i32) (local $pos i32)
    (local.set $rows (i32.load (local.get $arena)))
    (local.set $k (i32.load offset=4 (local.get $arena)))
    ;; candidate ids follow the header and the rows; output logits follow
    ;; the ids and the candidate logits.
    (local.set $ids (i32.add (i32.add (local.get $arena) (i32.const 16))
      (i32.mul (local.get $rows) (i32.const 32))))
    (local.set $outs (i32.add (local.get $ids)
      (i32.mul (i32.mul (local.get $rows) (local.get $k)) (i32.const 8))))
    (local.set $pos (i32.load offset=28 (local.get $arena))) ;; row 0's position
    (if (i32.eq (local.get $pos) (i32.const 1))
      (then (i32.store offset=44 (local.get $arena) (i32.const 1000000)) (return (i32.const 0))))
    (if (i32.eq (local.get $pos) (i32.const 2))
      (then (i32.store offset=44 (local.get $arena) (i32.const -7)) (return (i32.const 0))))
    (if (i32.eq (local.get $pos) (i32.const 3))
      (then (f32.store (local.get $outs) (f32.const nan)) (return (i32.const 0))))
    (if (i32.eq (local.get $pos) (i32.const 4))
      (then (loop $l (br $l))))
    ;; out_token of row 0 (at 16 + 28) = its first candidate
    (i32.store offset=44 (local.get $arena) (i32.load (local.get $ids)))
    (i32.const 0)))
