;; prims: calls the sampler primitives on arrays the caller placed in memory.
;; Layout: values at 0, ids out at 600000, values out at 700000.
(module
  (import "ulan_v1" "top_k" (func $top_k (param i32 i32 i32 i32 i32) (result i32)))
  (import "ulan_v1" "softmax" (func $softmax (param i32 i32 f32 i32) (result i32)))
  (import "ulan_v1" "draw" (func $draw (param i32 i32 f32) (result i32)))
  (memory (export "memory") 16)
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "topk") (param $n i32) (param $k i32) (result i32)
    (call $top_k (i32.const 0) (local.get $n) (local.get $k) (i32.const 600000) (i32.const 700000)))
  (func (export "topk_oob") (result i32)
    (call $top_k (i32.const 0) (i32.const 2000000) (i32.const 4) (i32.const 600000) (i32.const 700000)))
  (func (export "softmax_draw") (param $n i32) (param $u f32) (result i32)
    (if (i32.ne (call $softmax (i32.const 0) (local.get $n) (f32.const 1) (i32.const 0)) (i32.const 0))
      (then (return (i32.const -100))))
    (call $draw (i32.const 0) (local.get $n) (local.get $u))))
