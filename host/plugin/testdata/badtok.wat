;; badtok: a tokenizer (sdk/ABI.md §6.1) with 256 byte tokens whose
;; tok_encode answers as the text's first byte says:
;;   r  token id 300, outside the vocabulary
;;   n  token id -1
;;   h  an output of 256 MiB, beyond the host's bound
;;   o  an output outside its memory
;;   d  3 bytes, not a whole number of ids
;;   F  byte by byte, but the ulan_free that follows traps
;; and encodes anything else byte by byte. tok_decode writes the low byte of
;; each id, so [0xff] decodes to invalid UTF-8. ulan_alloc hands out the one
;; buffer at 16384 (the host allocates one input per call); outputs are
;; written at 65536.
(module
  (memory (export "memory") 4)
  (data (i32.const 1024) "{\"vocab_size\":256,\"bos\":1,\"eos\":[2],\"decode_is_concat\":true}")
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "ulan_alloc") (param $n i32) (result i32)
    (if (result i32) (i32.le_u (local.get $n) (i32.const 32768))
      (then (i32.const 16384))
      (else (i32.const 0))))
  (global $trapfree (mut i32) (i32.const 0))
  (func (export "ulan_free") (param i32)
    (if (global.get $trapfree) (then unreachable)))
  (func (export "ulan_init") (param i32 i32) (result i32) (i32.const 0))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
  (func (export "tok_info") (result i64) (call $pack (i32.const 1024) (i32.const 60)))
  ;; tok_vocab: per id a u16 length 1 and the byte.
  (func (export "tok_vocab") (param $start i32) (param $count i32) (result i64)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (i32.store16 (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 3))) (i32.const 1))
        (i32.store8 (i32.add (i32.const 65538) (i32.mul (local.get $i) (i32.const 3)))
          (i32.add (local.get $start) (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $pack (i32.const 65536) (i32.mul (local.get $count) (i32.const 3))))
  (func (export "tok_encode") (param $text i32) (param $len i32) (param $flags i32) (result i64)
    (local $c i32) (local $i i32)
    (if (i32.gt_u (local.get $len) (i32.const 0))
      (then
        (local.set $c (i32.load8_u (local.get $text)))
        (if (i32.eq (local.get $c) (i32.const 114)) ;; r
          (then (i32.store (i32.const 65536) (i32.const 300))
                (return (call $pack (i32.const 65536) (i32.const 4)))))
        (if (i32.eq (local.get $c) (i32.const 110)) ;; n
          (then (i32.store (i32.const 65536) (i32.const -1))
                (return (call $pack (i32.const 65536) (i32.const 4)))))
        (if (i32.eq (local.get $c) (i32.const 104)) ;; h
          (then (return (call $pack (i32.const 65536) (i32.const 0x10000000)))))
        (if (i32.eq (local.get $c) (i32.const 111)) ;; o
          (then (return (call $pack (i32.const 0x7fff0000) (i32.const 4)))))
        (if (i32.eq (local.get $c) (i32.const 100)) ;; d
          (then (return (call $pack (i32.const 65536) (i32.const 3)))))
        (if (i32.eq (local.get $c) (i32.const 70)) ;; F
          (then (global.set $trapfree (i32.const 1))))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 4)))
          (i32.load8_u (i32.add (local.get $text) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $pack (i32.const 65536) (i32.mul (local.get $len) (i32.const 4))))
  (func (export "tok_decode") (param $ids i32) (param $n i32) (param $flags i32) (result i64)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (i32.const 65536) (local.get $i))
          (i32.load (i32.add (local.get $ids) (i32.mul (local.get $i) (i32.const 4)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $pack (i32.const 65536) (local.get $n))))
