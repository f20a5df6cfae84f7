;; badhook: a hook (sdk/ABI.md §6.3) whose hook_delta breaks the contract as
;; the delta's first byte says:
;;   u  a REPLACE record whose text is not valid UTF-8
;;   b  a record longer than the host's bound (2 MiB)
;;   o  a record outside its memory
;;   a  an unknown action (9)
;;   l  a text length that disagrees with the record's
;;   s  blocks forever in poll_oneoff
;;   t  traps
;; and answers PASS to anything else. ulan_alloc hands out the one buffer at
;; 16384 (the host holds one arena per session); records are built at 4096.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 32768))
      (then (i32.const 16384))
      (else (i32.const 0))))
  (func (export "ulan_free") (param i32))
  (func (export "ulan_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "hook_open") (param i32 i32) (result i64) (i64.const 1))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
  ;; record writes action, finish reason 0 and a text length at 4096.
  (func $record (param $action i32) (param $len i32)
    (i32.store (i32.const 4096) (local.get $action))
    (i32.store (i32.const 4100) (i32.const 0))
    (i32.store (i32.const 4104) (local.get $len)))
  (func (export "hook_delta") (param $h i64) (param $text i32) (param $len i32)
      (param $ids i32) (param $n i32) (param $flags i32) (result i64)
    (local $c i32)
    (if (i32.eqz (local.get $len))
      (then (call $record (i32.const 0) (i32.const 0))
            (return (call $pack (i32.const 4096) (i32.const 12)))))
    (local.set $c (i32.load8_u (local.get $text)))
    (if (i32.eq (local.get $c) (i32.const 117)) ;; u
      (then
        (call $record (i32.const 1) (i32.const 2))
        (i32.store8 (i32.const 4108) (i32.const 0xc3))
        (i32.store8 (i32.const 4109) (i32.const 0x28))
        (return (call $pack (i32.const 4096) (i32.const 14)))))
    (if (i32.eq (local.get $c) (i32.const 98)) ;; b
      (then
        (call $record (i32.const 1) (i32.const 2097140))
        (return (call $pack (i32.const 4096) (i32.const 2097152)))))
    (if (i32.eq (local.get $c) (i32.const 111)) ;; o
      (then (return (call $pack (i32.const 0x7fff0000) (i32.const 12)))))
    (if (i32.eq (local.get $c) (i32.const 97)) ;; a
      (then
        (call $record (i32.const 9) (i32.const 0))
        (return (call $pack (i32.const 4096) (i32.const 12)))))
    (if (i32.eq (local.get $c) (i32.const 108)) ;; l
      (then
        (call $record (i32.const 1) (i32.const 100))
        (return (call $pack (i32.const 4096) (i32.const 14)))))
    (if (i32.eq (local.get $c) (i32.const 115)) ;; s: a relative one-hour clock subscription at 512
      (then
        (i32.store8 (i32.const 520) (i32.const 0))
        (i32.store (i32.const 528) (i32.const 1))
        (i64.store (i32.const 536) (i64.const 3600000000000))
        (i64.store (i32.const 544) (i64.const 0))
        (i32.store16 (i32.const 552) (i32.const 0))
        (loop $l
          (drop (call $poll (i32.const 512) (i32.const 640) (i32.const 1) (i32.const 704)))
          (br $l))))
    (if (i32.eq (local.get $c) (i32.const 116)) ;; t
      (then unreachable))
    (call $record (i32.const 0) (i32.const 0))
    (call $pack (i32.const 4096) (i32.const 12)))
  (func (export "hook_end") (param i64 i32) (result i64)
    (call $record (i32.const 0) (i32.const 0))
    (call $pack (i32.const 4096) (i32.const 12)))
  (func (export "hook_close") (param i64)))
