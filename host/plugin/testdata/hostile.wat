;; hostile: each export misbehaves in one way a plugin can.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "spam spam spam spam spam spam spam spam spam spam spam spam\n")
  (func (export "_initialize"))
  (func (export "ulan_abi_1"))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  ;; spin: an infinite loop
  (func (export "spin") (loop $l (br $l)))
  ;; bomb: grow memory a page at a time until refused, then trap
  (func (export "bomb")
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  ;; boom: a trap
  (func (export "boom") unreachable)
  ;; deep: unbounded recursion until the stack overflows
  (func $deep (export "deep") (call $deep))
  ;; spam: write 60 bytes to stdout n times (iovec at 0: ptr 64, len 60)
  (func (export "spam") (param $n i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 60))
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))))
