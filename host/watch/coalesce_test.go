package watch

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSlowConsumerCoalesces: changes found while nobody receives are merged
// into one Change, none dropped. The fired hook tells the test when each
// check has happened, so no timing is assumed.
func TestSlowConsumerCoalesces(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.wasm")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fired := make(chan []string, 100)
	w, err := New(Options{
		Files:    []string{a, b},
		Debounce: 20 * time.Millisecond,
		Logger:   slog.New(slog.DiscardHandler),
		fired:    fired,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	waitFired := func(want string) {
		t.Helper()
		for {
			select {
			case got := <-fired:
				if slices.Contains(got, want) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no check found %s changed", want)
			}
		}
	}
	if err := os.WriteFile(a, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFired(a)
	if err := os.WriteFile(b, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFired(b)
	if err := os.WriteFile(a, []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFired(a)

	select {
	case c := <-w.Changes():
		if c.Err != nil || !slices.Equal(c.Files, []string{a, b}) {
			t.Fatalf("Change = %+v, want Files [%s %s]", c, a, b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Change")
	}
}
