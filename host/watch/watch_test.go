package watch_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulan-ai/ulan/host/watch"
)

// guard bounds every wait; it only fires when a test is failing. No test
// relies on timing to pass: each waits for the Change it expects.
const guard = 10 * time.Second

func start(t *testing.T, files ...string) *watch.Watcher {
	t.Helper()
	w, err := watch.New(watch.Options{
		Files:        files,
		Debounce:     20 * time.Millisecond,
		PollInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// next returns the next Change, failing after guard.
func next(t *testing.T, w *watch.Watcher) watch.Change {
	t.Helper()
	select {
	case c, ok := <-w.Changes():
		if !ok {
			t.Fatal("Changes closed unexpectedly")
		}
		return c
	case <-time.After(guard):
		t.Fatalf("no Change within %v", guard)
	}
	panic("unreachable")
}

// expect asserts that the next Change names exactly files and has no error.
func expect(t *testing.T, w *watch.Watcher, files ...string) {
	t.Helper()
	c := next(t, w)
	if c.Err != nil {
		t.Fatalf("Change.Err = %v, want nil (files %q)", c.Err, c.Files)
	}
	if !slices.Equal(c.Files, files) {
		t.Fatalf("Change.Files = %q, want %q", c.Files, files)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace writes path atomically (temp file and rename), so no check can
// see it half written; used where a test needs exactly one Change per write.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPlainWrite(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "a: 1\n")
	w := start(t, cfg)

	write(t, cfg, "a: 2\n")
	expect(t, w, cfg)
	write(t, cfg, "a: 3\n")
	expect(t, w, cfg)
	if got := read(t, cfg); got != "a: 3\n" {
		t.Fatalf("content %q", got)
	}
}

func TestRelativePathReportedAsGiven(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write(t, "config.yaml", "a: 1\n")
	w := start(t, "config.yaml")
	write(t, filepath.Join(dir, "config.yaml"), "a: 2\n")
	expect(t, w, "config.yaml")
}

func TestEditorRenameOver(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "a: 1\n")
	w := start(t, cfg)

	// Twice: a watch on the file itself would be lost after the first.
	for i, content := range []string{"a: 2\n", "a: 3\n"} {
		tmp := filepath.Join(dir, fmt.Sprintf(".config.yaml.swp%d", i))
		write(t, tmp, content)
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
		expect(t, w, cfg)
		if got := read(t, cfg); got != content {
			t.Fatalf("content %q, want %q", got, content)
		}
	}
}

func TestDeleteThenRecreate(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "a: 1\n")
	w := start(t, cfg)

	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	expect(t, w, cfg) // gone counts as changed

	write(t, cfg, "a: 1\n") // back, even with the old content
	expect(t, w, cfg)

	write(t, cfg, "a: 2\n") // and still followed
	expect(t, w, cfg)
}

// TestKubernetesConfigMapSwap builds the layout kubelet uses for a ConfigMap
// volume and updates it the way kubelet does.
func TestKubernetesConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "config.yaml"), content)
	}
	symlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(from, to, content string) {
		t.Helper()
		mkVersion(to, content)
		symlink(to, "..data_tmp")
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, from)); err != nil {
			t.Fatal(err)
		}
	}

	mkVersion("..2024_01", "a: 1\n")
	symlink("..2024_01", "..data")
	symlink("..data/config.yaml", "config.yaml")
	cfg := filepath.Join(dir, "config.yaml")
	if got := read(t, cfg); got != "a: 1\n" {
		t.Fatalf("layout broken: %q", got)
	}
	w := start(t, cfg)

	swap("..2024_01", "..2024_02", "a: 2\n")
	expect(t, w, cfg)
	if got := read(t, cfg); got != "a: 2\n" {
		t.Fatalf("content %q", got)
	}

	swap("..2024_02", "..2024_03", "a: 3\n")
	expect(t, w, cfg)
	if got := read(t, cfg); got != "a: 3\n" {
		t.Fatalf("content %q", got)
	}
}

// TestBurstIsDebounced: 50 back-to-back writes do not give 50 changes, and
// once a later write (to a sentinel in the same directory) has been reported,
// the file's last reported state is the last write.
func TestBurstIsDebounced(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	sentinel := filepath.Join(dir, "sentinel")
	write(t, cfg, "n: -1\n")
	write(t, sentinel, "0")
	w := start(t, cfg, sentinel)

	const n = 50
	for i := range n {
		write(t, cfg, fmt.Sprintf("n: %d\n", i))
	}
	write(t, sentinel, "1")

	cfgChanges := 0
	for seen := false; !seen; {
		c := next(t, w)
		if c.Err != nil {
			t.Fatalf("Err: %v", c.Err)
		}
		if slices.Contains(c.Files, cfg) {
			cfgChanges++
		}
		seen = slices.Contains(c.Files, sentinel)
	}
	t.Logf("%d writes gave %d changes", n, cfgChanges)
	if cfgChanges < 1 || cfgChanges > n/2 {
		t.Fatalf("%d writes gave %d changes naming the file", n, cfgChanges)
	}
	if got, want := read(t, cfg), fmt.Sprintf("n: %d\n", n-1); got != want {
		t.Fatalf("content %q, want %q", got, want)
	}
}

// TestUnrelatedAndSameContent: activity that does not change a watched file's
// content (another file in the directory, a touch, a rewrite with the same
// bytes) is not reported; the first Change names only the real change.
func TestUnrelatedAndSameContent(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	write(t, a, "a\n")
	write(t, b, "b\n")
	w := start(t, a, b)

	write(t, filepath.Join(dir, "unrelated.txt"), "x")
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(a, future, future); err != nil {
		t.Fatal(err)
	}
	replace(t, a, "a\n")
	replace(t, b, "b2\n")
	expect(t, w, b)
}

func TestSetFiles(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	a := filepath.Join(dir1, "a.yaml")
	b := filepath.Join(dir2, "b.wasm")
	write(t, a, "a\n")
	write(t, b, "b\n")
	w := start(t, a)

	// Add b, in a directory not watched yet.
	if err := w.SetFiles([]string{a, b}); err != nil {
		t.Fatal(err)
	}
	replace(t, b, "b2\n")
	expect(t, w, b)

	// Drop a: its changes are no longer reported.
	if err := w.SetFiles([]string{b}); err != nil {
		t.Fatal(err)
	}
	replace(t, a, "a2\n")
	replace(t, b, "b3\n")
	expect(t, w, b)

	// A file whose directory does not exist is refused, naming it, and
	// leaves the Watcher as it was.
	missing := filepath.Join(dir1, "nope", "c.wasm")
	err := w.SetFiles([]string{b, missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("SetFiles with missing dir: err = %v, want one naming %s", err, missing)
	}
	replace(t, b, "b4\n")
	expect(t, w, b)

	// A new file is fingerprinted when added: only later changes count.
	c := filepath.Join(dir2, "c.wasm")
	write(t, c, "c\n")
	if err := w.SetFiles([]string{b, c}); err != nil {
		t.Fatal(err)
	}
	replace(t, c, "c2\n")
	expect(t, w, c)
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such", "config.yaml")
	_, err := watch.New(watch.Options{Files: []string{missing}})
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a not-exist error naming %s", err, missing)
	}

	notDir := filepath.Join(dir, "file")
	write(t, notDir, "x")
	_, err = watch.New(watch.Options{Files: []string{filepath.Join(notDir, "config.yaml")}})
	if err == nil || !strings.Contains(err.Error(), notDir) {
		t.Fatalf("err = %v, want one naming %s", err, notDir)
	}

	if _, err := watch.New(watch.Options{Files: []string{""}}); err == nil {
		t.Fatal("empty path accepted")
	}
}

// TestMissingFileAtStart: a file may be absent at New; its creation is a change.
func TestMissingFileAtStart(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	w := start(t, cfg)
	write(t, cfg, "a: 1\n")
	expect(t, w, cfg)
}

// TestDirectoryRemovedAndRecreated: the loss is reported as an error, the
// file as changed, and the directory is followed again once it is back.
func TestDirectoryRemovedAndRecreated(t *testing.T) {
	sub := filepath.Join(t.TempDir(), "conf")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(sub, "config.yaml")
	write(t, cfg, "a: 1\n")
	w := start(t, cfg)

	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	var sawErr, sawFile bool
	for !sawErr || !sawFile {
		c := next(t, w)
		if c.Err != nil {
			if !errors.Is(c.Err, watch.ErrDirGone) || !strings.Contains(c.Err.Error(), sub) {
				t.Fatalf("Err = %v, want ErrDirGone naming %s", c.Err, sub)
			}
			sawErr = true
		}
		if len(c.Files) > 0 {
			if !slices.Equal(c.Files, []string{cfg}) {
				t.Fatalf("Files = %q", c.Files)
			}
			sawFile = true
		}
	}

	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, cfg, "a: 2\n")
	expect(t, w, cfg)

	write(t, cfg, "a: 3\n") // the watch is really back
	expect(t, w, cfg)
}

// TestBusyDirectoryDoesNotStarve: a neighbour written more often than the
// debounce (here, in a tight loop for the ~10×Debounce it takes) cannot
// postpone the report forever.
func TestBusyDirectoryDoesNotStarve(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "a: 1\n")
	w := start(t, cfg)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		log := filepath.Join(dir, "busy.log")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.WriteFile(log, []byte(fmt.Sprint(i)), 0o644)
		}
	}()
	defer func() { close(stop); <-done }()

	write(t, cfg, "a: 2\n")
	expect(t, w, cfg)
}

func TestCloseClosesChanges(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	write(t, cfg, "a: 1\n")
	w, err := watch.New(watch.Options{Files: []string{cfg}, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	write(t, cfg, "a: 2\n") // a change may be pending; Close must not wait for a reader

	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(guard):
		t.Fatal("Close did not return")
	}
	timeout := time.After(guard)
	for open := true; open; {
		select {
		case _, open = <-w.Changes():
		case <-timeout:
			t.Fatal("Changes not closed")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.SetFiles([]string{cfg}); !errors.Is(err, watch.ErrClosed) {
		t.Fatalf("SetFiles after Close: %v, want ErrClosed", err)
	}

	// No goroutine left behind (polled: exiting goroutines take a moment to
	// be accounted for).
	deadline := time.Now().Add(guard)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}
