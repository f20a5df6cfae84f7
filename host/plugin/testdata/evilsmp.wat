;; evilsmp: a sampler (sdk/ABI.md §6.2) that misbehaves in the way its
;; config names: the third-from-last byte of the config, so {"mode":"x"}
;; picks x. Every row at position 0 (and every row of any mode not below)
;; gets a selector's answer, its first candidate; from position 1 on:
;;   i  processor: writes +Inf as the first candidate's output logit
;;   n  processor: writes -Inf as every output logit (nothing left to draw)
;;   z  processor: writes 0 as every output logit, including the -Inf
;;      (banned) candidates'
;;   l  selector: selects the row's last candidate (in a whole-vocabulary
;;      row, a banned token, at -Inf)
;;   k  keep-all with the smallest positive temperature (a denormal)
;;   w  asks to widen, always
;;   t  traps
;;   g  grows its memory until refused, then answers as at position 0
;;   G  grows its memory until refused, then traps (as a Go plugin panics)
;; and in every call whatever the position:
;;   m  traps on every third smp_step of an instance (intermittently)
;;   L  (ulan_init) loops forever
;; ulan_alloc hands out the one buffer at 16384 (the batch's arena).
(module
  (memory (export "memory") 2)
  (global $mode (mut i32) (i32.const 0))
  (global $calls (mut i32) (i32.const 0))
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 65536))
      (then (i32.const 16384))
      (else (i32.const 0))))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param $cfg i32) (param $len i32) (result i32)
    (if (i32.ge_u (local.get $len) (i32.const 3))
      (then (global.set $mode (i32.load8_u (i32.sub (i32.add (local.get $cfg) (local.get $len)) (i32.const 3))))))
    (if (i32.eq (global.get $mode) (i32.const 76)) ;; L
      (then (loop $l (br $l))))
    (i32.const 0))
  ;; handles count from 0 in each instance
  (global $next (mut i64) (i64.const 0))
  (func (export "smp_open") (param i32 i32) (result i64)
    (global.set $next (i64.add (global.get $next) (i64.const 1)))
    (i64.sub (global.get $next) (i64.const 1)))
  (func (export "smp_close") (param i64))
  ;; grow takes every page the host allows.
  (func $grow
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))))
  (func (export "smp_step") (param $arena i32) (param $size i32) (result i32)
    (local $rows i32) (local $k i32) (local $ids i32) (local $outs i32)
    (local $i i32) (local $j i32) (local $rec i32) (local $count i32) (local $first i32) (local $mode i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.and (i32.eq (global.get $mode) (i32.const 109)) ;; m
                 (i32.eqz (i32.rem_u (global.get $calls) (i32.const 3))))
      (then (unreachable)))
    (local.set $rows (i32.load (local.get $arena)))
    (local.set $k (i32.load offset=4 (local.get $arena)))
    ;; candidate ids follow the header and the rows; output logits follow
    ;; the ids and the candidate logits.
    (local.set $ids (i32.add (i32.add (local.get $arena) (i32.const 16))
      (i32.mul (local.get $rows) (i32.const 32))))
    (local.set $outs (i32.add (local.get $ids)
      (i32.mul (i32.mul (local.get $rows) (local.get $k)) (i32.const 8))))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $rec (i32.add (i32.add (local.get $arena) (i32.const 16)) (i32.mul (local.get $i) (i32.const 32))))
        (local.set $count (i32.load offset=8 (local.get $rec)))
        ;; the row's first candidate and first output logit, at i*k
        (local.set $first (i32.mul (i32.mul (local.get $i) (local.get $k)) (i32.const 4)))
        (local.set $mode (global.get $mode))
        (if (i32.eqz (i32.load offset=12 (local.get $rec)))
          (then (local.set $mode (i32.const 0))))
        (if (i32.eq (local.get $mode) (i32.const 116)) ;; t
          (then (unreachable)))
        (if (i32.eq (local.get $mode) (i32.const 103)) ;; g
          (then (call $grow) (local.set $mode (i32.const 0))))
        (if (i32.eq (local.get $mode) (i32.const 71)) ;; G
          (then (call $grow) (unreachable)))
        (block $answered
          (if (i32.eq (local.get $mode) (i32.const 105)) ;; i
            (then (f32.store (i32.add (local.get $outs) (local.get $first)) (f32.const inf))
                  (br $answered)))
          (if (i32.or (i32.eq (local.get $mode) (i32.const 110))  ;; n
                      (i32.eq (local.get $mode) (i32.const 122))) ;; z
            (then
              (local.set $j (i32.const 0))
              (block $end
                (loop $c
                  (br_if $end (i32.ge_u (local.get $j) (local.get $count)))
                  (f32.store (i32.add (i32.add (local.get $outs) (local.get $first)) (i32.mul (local.get $j) (i32.const 4)))
                    (select (f32.const -inf) (f32.const 0) (i32.eq (local.get $mode) (i32.const 110))))
                  (local.set $j (i32.add (local.get $j) (i32.const 1)))
                  (br $c)))
              (br $answered)))
          (if (i32.eq (local.get $mode) (i32.const 108)) ;; l
            (then (i32.store offset=28 (local.get $rec)
                    (i32.load (i32.add (i32.add (local.get $ids) (local.get $first))
                      (i32.mul (i32.sub (local.get $count) (i32.const 1)) (i32.const 4)))))
                  (br $answered)))
          (if (i32.eq (local.get $mode) (i32.const 107)) ;; k
            (then (i32.store offset=24 (local.get $rec) (i32.const 1))
                  (i32.store offset=28 (local.get $rec) (i32.const -3))
                  (br $answered)))
          (if (i32.eq (local.get $mode) (i32.const 119)) ;; w
            (then (i32.store offset=28 (local.get $rec) (i32.const -2))
                  (br $answered)))
          ;; a selector's first candidate
          (i32.store offset=28 (local.get $rec) (i32.load (i32.add (local.get $ids) (local.get $first)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row)))
    (i32.const 0)))
