;; meter: a module that uses every place a function index can appear
;; (calls, call_indirect through active, passive and declared element
;; segments, ref.func in code and in a global, exports, the start function,
;; the name section) and loops of every block type, for Instrument's tests.
(module
  (import "env" "double" (func $double (param i32) (result i32)))
  (import "globals" "g0" (global $g0 i32))
  (memory (export "memory") 1)
  (table $t 4 funcref)
  (global $fr funcref (ref.func $sq))
  (global $started (mut i32) (i32.const 0))
  (elem (i32.const 0) $sq $sum)
  (elem $p func $fib)
  (elem declare func $sum)
  (type $unary (func (param i32) (result i32)))

  (func $sq (type $unary) (i32.mul (local.get 0) (local.get 0)))
  ;; sum: n + (n-1) + … + 1, in a loop
  (func $sum (export "sum") (type $unary) (local $s i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set $s (i32.add (local.get $s) (local.get 0)))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br $l)))
    (local.get $s))
  ;; fib: recursion, no loop
  (func $fib (export "fib") (type $unary)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add
        (call $fib (i32.sub (local.get 0) (i32.const 1)))
        (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  ;; indirect: table[i](x) through the active segment
  (func (export "indirect") (param $i i32) (param $x i32) (result i32)
    (call_indirect (type $unary) (local.get $x) (local.get $i)))
  ;; via_passive: fib through the passive segment
  (func (export "via_passive") (type $unary)
    (table.init $t $p (i32.const 2) (i32.const 0) (i32.const 1))
    (call_indirect (type $unary) (local.get 0) (i32.const 2)))
  ;; via_global: sq through the funcref global
  (func (export "via_global") (type $unary)
    (table.set $t (i32.const 3) (global.get $fr))
    (call_indirect (type $unary) (local.get 0) (i32.const 3)))
  ;; via_ref: sum through ref.func in code
  (func (export "via_ref") (type $unary)
    (table.set $t (i32.const 3) (ref.func $sum))
    (call_indirect (type $unary) (local.get 0) (i32.const 3)))
  ;; imported: double(x + g0)
  (func (export "imported") (type $unary)
    (call $double (i32.add (local.get 0) (global.get $g0))))
  ;; switch: br_table
  (func (export "switch") (type $unary)
    (block $c
      (block $b
        (block $a (br_table $a $b $c (local.get 0)))
        (return (i32.const 10)))
      (return (i32.const 20)))
    (i32.const 30))
  ;; count: a loop with a result (a value block type), down to 0
  (func (export "count") (type $unary)
    (loop $l (result i32)
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get 0) (i32.const 0)))
      (local.get 0)))
  ;; triangle: 0 + 1 + … + n-1 in a loop with a parameter (a type-index block type)
  (func (export "triangle") (param $n i32) (result i32) (local $i i32)
    (i32.const 0)
    (loop $l (param i32) (result i32)
      (i32.add (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  ;; simd: x * 3, in lane 2 of a vector product
  (func (export "simd") (param f32) (result f32)
    (f32x4.extract_lane 2
      (f32x4.mul (f32x4.splat (local.get 0)) (v128.const f32x4 1 2 3 4))))
  ;; fill: memory.fill, then a load
  (func (export "fill") (type $unary)
    (memory.fill (i32.const 0) (i32.const 7) (local.get 0))
    (i32.load8_u (i32.const 5)))
  (func $start (global.set $started (i32.const 7)))
  (start $start)
  (func (export "started") (result i32) (global.get $started))
  ;; spin: loops forever
  (func (export "spin") (loop $l (br $l)))
  ;; fan: calls itself twice, to depth n (2^n calls, no loop)
  (func $fan (export "fan") (param i32)
    (if (local.get 0)
      (then
        (call $fan (i32.sub (local.get 0) (i32.const 1)))
        (call $fan (i32.sub (local.get 0) (i32.const 1)))))))
