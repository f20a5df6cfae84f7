;; tok: drives the tokenizer primitives. Memory: the pattern \p{N}{1,3} at 0
;; (10 bytes), text "abc12345" at 64, spans out at 1024; BPE merges at 2048
;; (left 1 2 / right 2 3 / result 4 5: (1,2)→4 then (4,3)→5... see the test),
;; symbols at 2304, merged ids out at 2560.
(module
  (import "ulan_v1" "regex_compile" (func $compile (param i32 i32) (result i32)))
  (import "ulan_v1" "regex_split" (func $split (param i32 i32 i32 i32 i32) (result i32)))
  (import "ulan_v1" "bpe_register" (func $register (param i32 i32 i32 i32) (result i32)))
  (import "ulan_v1" "bpe_merge" (func $merge (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\\p{N}{1,3}")
  (data (i32.const 32) "(unclosed")
  (data (i32.const 64) "abc12345")
  ;; merges: left [1, 4], right [2, 3], result [4, 5]
  (data (i32.const 2048) "\01\00\00\00\04\00\00\00")
  (data (i32.const 2056) "\02\00\00\00\03\00\00\00")
  (data (i32.const 2064) "\04\00\00\00\05\00\00\00")
  ;; symbols [1, 2, 3, 1, 2]
  (data (i32.const 2304) "\01\00\00\00\02\00\00\00\03\00\00\00\01\00\00\00\02\00\00\00")
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "compile") (result i32) (call $compile (i32.const 0) (i32.const 10)))
  (func (export "compile_bad") (result i32) (call $compile (i32.const 32) (i32.const 9)))
  (func (export "split") (param $id i32) (param $cap i32) (result i32)
    (call $split (local.get $id) (i32.const 64) (i32.const 8) (i32.const 1024) (local.get $cap)))
  (func (export "register") (result i32)
    (call $register (i32.const 2048) (i32.const 2056) (i32.const 2064) (i32.const 2)))
  (func (export "merge") (param $id i32) (result i32)
    (call $merge (local.get $id) (i32.const 2304) (i32.const 5) (i32.const 2560) (i32.const 8))))
