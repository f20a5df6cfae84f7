;; acthook: a hook (sdk/ABI.md §6.3) for the hook chain's tests whose
;; hook_delta answers as the delta's first byte says:
;;   R  REPLACE with "<r>" followed by the delta (deltas under 2 KiB)
;;   D  REDACT to "***"
;;   H  REPLACE with nothing (hold back) and keep the delta for hook_end
;;   S  STOP with "<s>" and finish reason 4 (content_filter)
;;   T  traps
;; and PASS to anything else. hook_end emits what H held back (PASS when
;; nothing), after "<e>" when it is over 64 KiB (so that a hook after it
;; passes a long release rather than holding it). ulan_alloc hands out the
;; one buffer at 65536, of any size; records are built at 4096, and held
;; text is kept from 4 MiB on. Memory grows as the text needs (up to the
;; host's memory_pages grant).
(module
  (memory (export "memory") 2)
  ;; ensure grows memory to hold the byte before end, trapping when the
  ;; host refuses.
  (func $ensure (param $end i32)
    (local $need i32)
    (local.set $need (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)) (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.lt_s (memory.grow (local.get $need)) (i32.const 0)) (then unreachable)))))
  (global $held (mut i32) (i32.const 0))
  (data (i32.const 1024) "<r>***<s><e>")
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 0x300000))
      (then (call $ensure (i32.add (i32.const 65536) (local.get $n))) (i32.const 65536))
      (else (i32.const 0))))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "hook_open") (param i32 i32) (result i64)
    (global.set $held (i32.const 0))
    (i64.const 1))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
  ;; answer writes a record at 4096 with the action, finish reason and the
  ;; len bytes at src, and returns it packed.
  (func $answer (param $action i32) (param $finish i32) (param $src i32) (param $len i32) (result i64)
    (i32.store (i32.const 4096) (local.get $action))
    (i32.store (i32.const 4100) (local.get $finish))
    (i32.store (i32.const 4104) (local.get $len))
    (call $ensure (i32.add (i32.const 4108) (local.get $len)))
    (memory.copy (i32.const 4108) (local.get $src) (local.get $len))
    (call $pack (i32.const 4096) (i32.add (i32.const 12) (local.get $len))))
  (func (export "hook_delta") (param $h i64) (param $text i32) (param $len i32)
      (param $ids i32) (param $n i32) (param $flags i32) (result i64)
    (local $c i32)
    (if (i32.eqz (local.get $len))
      (then (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (local.set $c (i32.load8_u (local.get $text)))
    (if (i32.eq (local.get $c) (i32.const 82)) ;; R: "<r>" + delta, built at 1024+16
      (then
        (memory.copy (i32.const 1040) (i32.const 1024) (i32.const 3))
        (memory.copy (i32.const 1043) (local.get $text) (local.get $len))
        (return (call $answer (i32.const 1) (i32.const 0) (i32.const 1040) (i32.add (local.get $len) (i32.const 3))))))
    (if (i32.eq (local.get $c) (i32.const 68)) ;; D
      (then (return (call $answer (i32.const 2) (i32.const 0) (i32.const 1027) (i32.const 3)))))
    (if (i32.eq (local.get $c) (i32.const 72)) ;; H: hold the delta
      (then
        (call $ensure (i32.add (i32.add (i32.const 0x400000) (global.get $held)) (local.get $len)))
        (memory.copy (i32.add (i32.const 0x400000) (global.get $held)) (local.get $text) (local.get $len))
        (global.set $held (i32.add (global.get $held) (local.get $len)))
        (return (call $answer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (if (i32.eq (local.get $c) (i32.const 83)) ;; S
      (then (return (call $answer (i32.const 3) (i32.const 4) (i32.const 1030) (i32.const 3)))))
    (if (i32.eq (local.get $c) (i32.const 84)) ;; T
      (then unreachable))
    (call $answer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
  (func (export "hook_end") (param i64 i32) (result i64)
    (local $n i32)
    (local.set $n (global.get $held))
    (global.set $held (i32.const 0))
    (if (i32.eqz (local.get $n))
      (then (return (call $answer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (if (i32.le_u (local.get $n) (i32.const 65536))
      (then (return (call $answer (i32.const 1) (i32.const 0) (i32.const 0x400000) (local.get $n)))))
    ;; "<e>" goes just before the held text, which it then opens.
    (memory.copy (i32.const 0x3ffffd) (i32.const 1033) (i32.const 3))
    (call $answer (i32.const 1) (i32.const 0) (i32.const 0x3ffffd) (i32.add (local.get $n) (i32.const 3))))
  (func (export "hook_close") (param i64)))
