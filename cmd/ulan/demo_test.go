package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/config"
	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"
)

func logged() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// TestDemoModel writes the built-in demo model into a cache directory as
// serve does, finds it there the next time, and serves it: GetModel names
// it and Tokenize gives DeepSeek's ids. One test, so that the model (seconds
// under -race) is written once.
func TestDemoModel(t *testing.T) {
	// Not parallel: serve finds the cache through the environment.
	d := builtinDemo
	root, err := os.MkdirTemp(testmodel.TempRoot(), "ulan-demo-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })

	// The file written is the one builtinDemo describes, which an earlier
	// build (likely on another machine) wrote: building is deterministic. A
	// change to testmodel that changes the file must bump testmodel.Version
	// and give builtinDemo the new size and CRC-32C, which the log shows.
	home := filepath.Join(root, "home")
	cache := filepath.Join(home, ".cache", "ulan", "models")
	require.NoError(t, os.MkdirAll(cache, 0o755))
	log, logs := logged()
	path, err := d.ensure(cache, log, io.Discard)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(cache, d.fileName()), path)
	require.Contains(t, logs.String(), "demo model written")
	require.NotContains(t, logs.String(), "differs", "builtinDemo's size and CRC-32C are those of the file testmodel writes")
	require.NoError(t, d.check(path))

	// Found in the cache: nothing is written.
	log, logs = logged()
	again, err := d.ensure(cache, log, io.Discard)
	require.NoError(t, err)
	require.Equal(t, path, again)
	require.Empty(t, logs.String())

	// serve with no model finds the demo in the user's cache directory.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	t.Setenv("HOME", home)
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Model.Threads = 1
	cfg.Model.KVCache = 16 * config.MiB
	log, logs = logged()
	srv, release, err := newServer(context.Background(), cfg, log, io.Discard, config.Sources{}, nil)
	require.NoError(t, err)
	startup := logs.String() // Serve logs too, on its own goroutine
	require.NotContains(t, startup, "writing the demo model", "found in the cache")
	require.Contains(t, startup, "whose weights and so whose words are random")
	ln, err := srv.Listen()
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		<-done
		release()
	})

	addr := ln.Addr().String()
	res, err := ulanv1connect.NewModelServiceClient(http.DefaultClient, "http://"+addr).
		GetModel(context.Background(), connect.NewRequest(&ulanv1.GetModelRequest{}))
	require.NoError(t, err)
	m := res.Msg.GetModel()
	require.Equal(t, "ulan-demo-v4 (random weights)", m.GetName())
	require.Equal(t, "deepseek4", m.GetArchitecture())
	require.Equal(t, uint32(129280), m.GetVocabSize())
	require.Equal(t, uint64(1<<20), m.GetContextLength())
	require.Equal(t, []string{"f32", "i32", "q8_0"}, m.GetDtypes(), "i32: the hash-routed layer's tid2eid table")

	code, out, errOut := ulan(t, "", "tokenize", "--addr", addr, "--json", "Hello, world!")
	require.Equal(t, 0, code, errOut)
	var tok struct {
		TokenIDs []int `json:"tokenIds"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &tok))
	require.Equal(t, []int{19923, 14, 2058, 3}, tok.TokenIDs, "DeepSeek-V3's ids, as transformers.js gives them")
	inf := ulanv1connect.NewInferenceServiceClient(http.DefaultClient, "http://"+addr)
	text := "DeepSeek 深度求索 <think> x² + 1\n"
	ids, err := inf.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: text}))
	require.NoError(t, err)
	back, err := inf.Detokenize(context.Background(), connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: ids.Msg.GetTokenIds()}))
	require.NoError(t, err)
	require.Equal(t, text, back.Msg.GetText())

	// `ulan chat "hello"` streams text (V4's chat encoder), the same for
	// the same seed.
	chat := func() string {
		code, out, errOut := ulan(t, "", "chat", "--addr", addr, "--max-tokens", "12", "--seed", "1", "--thinking", "off", "hello")
		require.Equal(t, 0, code, errOut)
		require.NotEmpty(t, strings.TrimSpace(out))
		return out
	}
	first := chat()
	require.Equal(t, first, chat())
}

// TestDemoCache checks the cache on a demo small enough to write four
// times: writing is deterministic, a damaged file (one byte changed, or cut
// short) fails the check and is written again, never loaded, and without a
// usable cache directory the demo goes to a temporary one.
func TestDemoCache(t *testing.T) {
	// Not parallel: the cache directory comes from the environment.
	cfg := testmodel.TinyV3()
	cfg.Name, cfg.Hidden, cfg.Layers = "ulan-test-micro", 4, 1
	d := demo{name: "ulan-test-micro", cfg: cfg, seed: 7}
	h := crc32.New(castagnoli)
	n := &countWriter{w: h}
	require.NoError(t, cfg.Write(n, d.seed))
	d.size, d.crc = n.n, h.Sum32()

	dir := t.TempDir()
	log, logs := logged()
	path, err := d.ensure(dir, log, io.Discard)
	require.NoError(t, err)
	require.NotContains(t, logs.String(), "differs", "written twice, the same bytes")
	temps, err := filepath.Glob(filepath.Join(dir, tempPattern))
	require.NoError(t, err)
	require.Empty(t, temps, "the temporary file was renamed into place")
	first := fileSHA256(t, path)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o644))
	require.ErrorContains(t, d.check(path), "bytes, want")
	data[len(data)-1] ^= 1
	require.NoError(t, os.WriteFile(path, data, 0o644))
	require.ErrorContains(t, d.check(path), "CRC-32C")

	log, logs = logged()
	again, err := d.ensure(dir, log, io.Discard)
	require.NoError(t, err)
	require.Equal(t, path, again)
	require.Contains(t, logs.String(), "the cached demo model is damaged; writing it again")
	require.Contains(t, logs.String(), "demo model written")
	require.Equal(t, first, fileSHA256(t, path), "written again, the same bytes")

	// Two servers starting at once both write it, each to a file of its
	// own, and each finds a whole file at the path.
	fresh := t.TempDir()
	paths := make(chan string, 2)
	for range 2 {
		go func() {
			p, err := d.ensure(fresh, slog.New(slog.DiscardHandler), io.Discard)
			assert.NoError(t, err)
			assert.NoError(t, d.check(p))
			paths <- p
		}()
	}
	require.Equal(t, <-paths, <-paths)
	left, err := os.ReadDir(fresh)
	require.NoError(t, err)
	require.Len(t, left, 1, "no temporary file is left")

	// A directory that cannot be written to is an error naming it, which
	// demoModel answers with a temporary directory.
	missing := filepath.Join(t.TempDir(), "missing")
	_, err = d.ensure(missing, log, io.Discard)
	require.ErrorContains(t, err, "writing the demo model to "+missing)
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	t.Setenv("XDG_CACHE_HOME", notDir)
	t.Setenv("HOME", notDir)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	log, logs = logged()
	path, cleanup, err := demoModel(d, log, io.Discard)
	require.NoError(t, err)
	require.Contains(t, logs.String(), "the model cache cannot be used; writing the demo model to a temporary directory")
	require.True(t, strings.HasPrefix(path, tmp+string(filepath.Separator)), path)
	require.NoError(t, d.check(path))
	cleanup()
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func fileSHA256(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(data)
}
