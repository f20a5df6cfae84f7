package host_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulan-ai/ulan/host/plugin"
	"github.com/ulan-ai/ulan/host/watch"
	"github.com/ulan-ai/ulan/plugins"
)

// BenchmarkReload measures a reload from the configuration file's write to the swap of
// the new generation, through the file watcher as `ulan serve` runs it (debounce 20 ms, as there):
//
//   - pipelines: only the pipelines change; every plugin is carried over;
//   - plugin-config: the redact plugin's config changes: new instances (ulan_init with
//     the new config) on the module the old plugin has compiled (plugin.Derive);
//   - plugin-module: the module file changes to bytes this server ran before (a
//     rollback), whose compiled runtime waits on the plugin shelf;
//   - plugin-module-disk: the same without a shelf: the plugin loads from the on-disk
//     compilation cache (as the first load of a module compiled by an earlier process),
//     which wazero still decodes, validates and hashes;
//   - cold-compile: the plugin's module file is replaced by one the server has never
//     compiled (a custom section with a new number appended), so it compiles afresh.
//
// It reports ms/reload, from the write to the swap (the debounce is part of it), and
// ms/build+swap, the part after the watcher reported the change.
func BenchmarkReload(b *testing.B) {
	for _, kind := range []string{"pipelines", "plugin-config", "plugin-module", "plugin-module-disk", "cold-compile"} {
		b.Run(kind, func(b *testing.B) {
			var shelf *plugin.Shelf
			if kind != "plugin-module-disk" {
				shelf = plugin.NewShelf(4, time.Minute)
			}
			s := startReloadingShelf(b, time.Minute, func(module string) string { return redactConfig(module, "<m0>") }, nil, shelf)
			kind := strings.TrimSuffix(kind, "-disk")
			w, err := watch.New(watch.Options{Files: []string{s.file, s.module}, Debounce: 20 * time.Millisecond, Logger: quietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			ctx := context.Background()
			if kind == "plugin-module" {
				// Compile both versions once, so that the timed loads hit the cache.
				for v := -1; v >= -2; v-- {
					writeModule(b, s.module, v)
					<-w.Changes()
					if res := s.srv.Reload(ctx, "watch"); !res.Ok {
						b.Fatal(res)
					}
				}
			}
			var total, building time.Duration
			for i := 0; b.Loop(); i++ {
				text := redactConfig(s.module, "<m0>")
				switch kind {
				case "pipelines":
					text += fmt.Sprintf("  - name: extra%d\n", i)
				case "plugin-module":
				default:
					text = redactConfig(s.module, fmt.Sprintf("<m%d>", i+1))
				}
				before := s.live.Current().Number()
				start := time.Now()
				switch kind {
				case "cold-compile":
					writeModule(b, s.module, i)
				case "plugin-module":
					writeModule(b, s.module, -1-i%2) // the two versions compiled above, in turn
				}
				tmp := s.file + ".tmp"
				if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(tmp, s.file); err != nil {
					b.Fatal(err)
				}
				ch := <-w.Changes()
				if ch.Err != nil {
					b.Fatal(ch.Err)
				}
				seen := time.Now()
				res := s.srv.Reload(ctx, "watch")
				total += time.Since(start)
				building += time.Since(seen)
				if !res.Ok || res.Generation != before+1 {
					b.Fatalf("reload %d: %v", i, res)
				}
			}
			b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms/reload")
			b.ReportMetric(float64(building.Microseconds())/1e3/float64(b.N), "ms/build+swap")
		})
	}
}

// writeModule replaces the redact module at path by the built-in one with a custom
// section numbered n appended: the same plugin, bytes no cache has seen.
func writeModule(tb testing.TB, path string, n int) {
	tb.Helper()
	payload := strconv.Itoa(n)
	wasm := append([]byte(nil), plugins.Builtins()["redact"]...)
	wasm = append(wasm, 0, byte(1+5+len(payload)), 5, 'n', 'o', 'i', 's', 'e')
	wasm = append(wasm, payload...)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, wasm, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}
