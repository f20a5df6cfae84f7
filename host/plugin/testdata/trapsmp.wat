;; trapsmp: a sampler (sdk/ABI.md §6.2) in selector mode that selects each
;; row's first candidate while the first row's position is 0, and traps
;; (unreachable) from position 1 on: a plugin that fails mid-request.
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
    (local $rows i32) (local $ids i32)
    (if (i32.ne (i32.load offset=28 (local.get $arena)) (i32.const 0))
      (then (unreachable)))
    (local.set $rows (i32.load (local.get $arena)))
    (local.set $ids (i32.add (i32.add (local.get $arena) (i32.const 16))
      (i32.mul (local.get $rows) (i32.const 32))))
    ;; out_token of row 0 (at 16 + 28) = its first candidate
    (i32.store offset=44 (local.get $arena) (i32.load (local.get $ids)))
    (i32.const 0)))
