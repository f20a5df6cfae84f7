;; hostile: each export misbehaves in one way a plugin can.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "spam spam spam spam spam spam spam spam spam spam spam spam\n")
  (data (i32.const 128) "etc/passwd")
  (data (i32.const 144) "/etc/passwd")
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
  ;; fan: calls itself twice, to depth 60: 2^61 calls and no loop, which
  ;; wazero's own termination check (at loop heads only) never stops
  (func $fan (param i32)
    (if (local.get 0)
      (then
        (call $fan (i32.sub (local.get 0) (i32.const 1)))
        (call $fan (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "fan") (call $fan (i32.const 60)))
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
        (br $l))))
  ;; open_at: path_open(fd, path) with "etc/passwd" (abs 0) or "/etc/passwd"
  ;; (abs 1), as wasi-libc would in a preopened directory at fd 3; returns
  ;; the errno, and the fd slot at 256 keeps its sentinel -1 unless a file
  ;; was opened.
  (func (export "open_at") (param $fd i32) (param $abs i32) (result i32)
    (i32.store (i32.const 256) (i32.const -1))
    (call $path_open (local.get $fd) (i32.const 1)
      (select (i32.const 144) (i32.const 128) (local.get $abs))
      (select (i32.const 11) (i32.const 10) (local.get $abs))
      (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 256)))
  ;; opened: the fd slot open_at writes to.
  (func (export "opened") (result i32) (i32.load (i32.const 256)))
  ;; prestat: fd_prestat_get(fd), which describes a preopened directory.
  (func (export "prestat") (param $fd i32) (result i32)
    (call $fd_prestat_get (local.get $fd) (i32.const 264)))
  ;; sleep: blocks forever, an hour at a time, in poll_oneoff on a relative
  ;; clock subscription (48 bytes at 512: userdata, tag 0 = clock at +8,
  ;; clock id at +16, timeout ns at +24, precision at +32, flags 0 at +40).
  (func (export "sleep")
    (i32.store8 (i32.const 520) (i32.const 0))
    (i32.store (i32.const 528) (i32.const 1))
    (i64.store (i32.const 536) (i64.const 3600000000000))
    (i64.store (i32.const 544) (i64.const 0))
    (i32.store16 (i32.const 552) (i32.const 0))
    (loop $l
      (drop (call $poll_oneoff (i32.const 512) (i32.const 640) (i32.const 1) (i32.const 704)))
      (br $l)))
  ;; wait_stdin: blocks forever waiting for stdin to be readable (a second
  ;; subscription at 560: tag 1 = fd_read at +8, fd 0 at +16) with an hour's
  ;; clock, and reads it whenever poll says it is ready.
  (func (export "wait_stdin")
    (i32.store8 (i32.const 520) (i32.const 0))
    (i32.store (i32.const 528) (i32.const 1))
    (i64.store (i32.const 536) (i64.const 3600000000000))
    (i64.store (i32.const 544) (i64.const 0))
    (i32.store16 (i32.const 552) (i32.const 0))
    (i32.store8 (i32.const 568) (i32.const 1))
    (i32.store (i32.const 576) (i32.const 0))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 64))
    (loop $l
      (drop (call $poll_oneoff (i32.const 512) (i32.const 640) (i32.const 2) (i32.const 704)))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $l)))
  ;; exit: proc_exit(3), as a Go plugin does on an unrecovered panic
  (func (export "exit") (call $proc_exit (i32.const 3))))
