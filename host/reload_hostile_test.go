package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// redactPipelines is redactConfig with the pipelines given in place of default and
// redacted.
func redactPipelines(module, mask, pipelines string) string {
	text := redactConfig(module, mask)
	return text[:strings.Index(text, "pipelines:\n")] + "pipelines:\n" + pipelines
}

// stream opens a stream of n @ through pipeline and returns it once its Started
// message has arrived (the request runs on its generation from then on).
func stream(t *testing.T, c ulanv1connect.InferenceServiceClient, at []uint32, pipeline string, n int32) (*connect.ServerStreamForClient[ulanv1.GenerateResponse], uint64) {
	t.Helper()
	s, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "Mail",
		Sampling: &ulanv1.SamplingParams{AllowedTokenIds: at, MaxTokens: i32(n)},
		Plugins:  &ulanv1.PluginSelection{Pipeline: pipeline}}))
	require.NoError(t, err)
	require.True(t, s.Receive(), "%v", s.Err())
	st := s.Msg().GetStarted()
	require.NotNil(t, st)
	return s, st.ConfigGeneration
}

// finish reads a stream to its end and returns its text, or an error when it failed or
// did not end for its length.
func finish(s *connect.ServerStreamForClient[ulanv1.GenerateResponse]) (string, error) {
	defer s.Close()
	var text string
	var fin *ulanv1.Finished
	for s.Receive() {
		text += s.Msg().GetDelta().GetContent()
		if f := s.Msg().GetFinished(); f != nil {
			fin = f
		}
	}
	if err := s.Err(); err != nil {
		return text, err
	}
	if fin.GetFinishReason() != ulanv1.FinishReason_FINISH_REASON_LENGTH {
		return text, fmt.Errorf("finished %v: %s", fin.GetFinishReason(), fin.GetMessage())
	}
	return text, nil
}

// TestReloadRemovesPipelineInFlight: streams running on a pipeline that a reload
// removes, or renames, finish on the generation they started on, with its plugin's
// config; requests after the swap that name the old pipeline get InvalidArgument, and
// the renamed one serves the new config.
func TestReloadRemovesPipelineInFlight(t *testing.T) {
	for name, pipelines := range map[string]string{
		"removed": "  - name: default\n",
		"renamed": "  - name: default\n  - name: masked\n    hooks: [redact]\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := startReloading(t, "<one>")
			c := clients(s.url)["connect+proto/h2c"]
			at := atToken(t, c)
			const streams = 8 // twice the pool: half of them run on instances of their own
			open := make([]*connect.ServerStreamForClient[ulanv1.GenerateResponse], streams)
			for i := range open {
				var gen uint64
				open[i], gen = stream(t, c, at, "redacted", 200)
				require.Equal(t, uint64(1), gen)
			}
			s.write(t, redactPipelines(s.module, "<two>", pipelines))
			res := s.srv.Reload(context.Background(), "rpc")
			require.True(t, res.Ok, "%v", res.Problems)
			require.Equal(t, uint64(2), res.Generation)

			var wg sync.WaitGroup
			errs := make(chan error, streams)
			for _, st := range open {
				wg.Go(func() {
					text, err := finish(st)
					if err == nil && text != "<one>" {
						err = fmt.Errorf("a stream of generation 1 answered %q", text)
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}

			_, _, err := masked(t, c, at)
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			require.ErrorContains(t, err, `no pipeline named "redacted"`)
			if name == "renamed" {
				st, gen := stream(t, c, at, "masked", 6)
				require.Equal(t, uint64(2), gen)
				text, err := finish(st)
				require.NoError(t, err)
				require.Equal(t, "<two>", text)
			}
			require.Eventually(t, func() bool { return len(s.live.Retired()) == 0 }, 10*time.Second, 10*time.Millisecond,
				"generation 1 closes once its last stream ends")
		})
	}
}

// lockedBuffer is a log destination tests may read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReloadRefusesRestartOnlyKeys: a file that changes keys only a restart can apply
// (the listen address, the model, a limit) along with a live one (the plugin's config)
// applies nothing; the result, GetStatus and the log name each key.
func TestReloadRefusesRestartOnlyKeys(t *testing.T) {
	logs := &lockedBuffer{}
	s := startReloadingShelf(t, time.Minute, func(module string) string { return redactConfig(module, "<one>") }, nil,
		nil, host.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	c := clients(s.url)["connect+proto/h2c"]
	pc := ulanv1connect.NewPluginServiceClient(http.DefaultClient, s.url)
	at := atToken(t, c)
	ctx := context.Background()

	text := redactConfigAt(s.module, "<two>", "127.0.0.1:1") +
		"model:\n  path: " + s.module + "\nlimits:\n  max_tokens: 5\n"
	s.write(t, text)
	res := s.srv.Reload(ctx, "signal")
	require.False(t, res.Ok)
	want := []string{"limits.max_tokens", "model.path", "server.listen"}
	require.Equal(t, want, res.RestartRequired)
	var keys []string
	for _, p := range res.Problems {
		keys = append(keys, p.Key)
		require.Contains(t, p.Message, "only after a restart")
	}
	require.Equal(t, want, keys, "each problem names its key")

	st, err := pc.GetStatus(ctx, connect.NewRequest(&ulanv1.GetStatusRequest{}))
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Msg.Generation)
	require.Equal(t, want, st.Msg.LastReload.RestartRequired)
	require.Equal(t, "model.path", st.Msg.LastReload.Problems[1].Key)
	for _, k := range want {
		require.Contains(t, logs.String(), k, "the log names the key")
	}
	got, gen, err := masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<one>", got, "the plugin's new config waits too")
	require.Equal(t, uint64(1), gen)

	// Put back, the file reloads.
	s.write(t, redactConfig(s.module, "<two>"))
	require.True(t, s.srv.Reload(ctx, "signal").Ok)
	got, _, err = masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<two>", got)
}

// TestReloadStorm: many reloads at once (signals, watch events and RPCs), while the
// file is rewritten between valid and broken versions and clients stream: no request
// fails, the last reload after the last write serves that file, and once the requests
// end nothing is left behind: one generation, a pool no larger than configured, and no
// goroutines beyond those of idle connections.
func TestReloadStorm(t *testing.T) {
	s := startReloading(t, "<g>")
	c := clients(s.url)["connect+proto/h2c"]
	pc := ulanv1connect.NewPluginServiceClient(http.DefaultClient, s.url)
	at := atToken(t, c)
	ctx := context.Background()
	_, _, err := masked(t, c, at)
	require.NoError(t, err)
	baseline := runtime.NumGoroutine()

	stop := make(chan struct{})
	var served atomic.Int64
	var clientsWG sync.WaitGroup
	errs := make(chan error, 16)
	for range 3 {
		clientsWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := masked(t, c, at); err != nil {
					errs <- err
					return
				}
				served.Add(1)
			}
		})
	}
	var writes sync.Mutex // one writer of the file at a time: the test's, not the server's, rule
	var reloaders sync.WaitGroup
	var ok, refused atomic.Int64
	for w := range 8 {
		reloaders.Go(func() {
			for i := range 12 {
				writes.Lock()
				switch (w + i) % 3 {
				case 0:
					s.write(t, redactConfig(s.module, fmt.Sprintf("<g%d.%d>", w, i)))
				case 1:
					s.write(t, "plugins: {broken\n")
				}
				writes.Unlock()
				var res *ulanv1.ReloadResult
				if i%2 == 0 {
					r, err := pc.Reload(ctx, connect.NewRequest(&ulanv1.ReloadRequest{}))
					if err != nil {
						errs <- err
						return
					}
					res = r.Msg.Result
				} else {
					res = s.srv.Reload(ctx, []string{"signal", "watch"}[w%2])
				}
				if res.Ok {
					ok.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	reloaders.Wait()
	s.write(t, redactConfig(s.module, "<final>"))
	res := s.srv.Reload(ctx, "signal")
	require.True(t, res.Ok, "%v", res.Problems)
	close(stop)
	clientsWG.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d reloads swapped, %d refused, %d responses", ok.Load(), refused.Load(), served.Load())

	text, gen, err := masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<final>", text)
	require.Equal(t, res.Generation, gen)
	require.Eventually(t, func() bool { return len(s.live.Retired()) == 0 }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, s.live.Generations(), 1)
	p, found := s.live.Current().Plugin("redact")
	require.True(t, found)
	require.Eventually(t, func() bool {
		st := p.Runtime.Stats()
		return st.Size <= 4 && st.Idle == st.Size
	}, 10*time.Second, 10*time.Millisecond, "the pool keeps its 4 instances, all idle: %+v", p.Runtime.Stats())
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline+8 }, 10*time.Second, 50*time.Millisecond,
		"goroutines: %d before the storm, %d after", baseline, runtime.NumGoroutine())
}

// TestReloadPartialAndSwappedFiles: a file caught half written in place (an editor
// that writes in several calls) is refused and changes nothing; the whole file then
// reloads. A ConfigMap-style swap (the file a symlink through ..data, re-pointed by a
// rename) reloads the new version.
func TestReloadPartialAndSwappedFiles(t *testing.T) {
	s := startReloading(t, "<one>")
	c := clients(s.url)["connect+proto/h2c"]
	at := atToken(t, c)
	ctx := context.Background()

	full := redactConfig(s.module, "<two>")
	cut := strings.Index(full, `"<two>"`) + 3 // inside the quoted mask
	f, err := os.OpenFile(s.file, os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString(full[:cut])
	require.NoError(t, err)
	res := s.srv.Reload(ctx, "watch")
	require.False(t, res.Ok)
	require.Equal(t, uint64(1), res.Generation)
	text, _, err := masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<one>", text)
	_, err = f.WriteString(full[cut:])
	require.NoError(t, err)
	require.NoError(t, f.Close())
	res = s.srv.Reload(ctx, "watch")
	require.True(t, res.Ok, "%v", res.Problems)
	text, _, err = masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<two>", text)

	// The ConfigMap layout: ulan.yaml -> ..data/ulan.yaml, ..data -> a versioned directory.
	dir := filepath.Dir(s.file)
	version := func(n int, mask string) string {
		d := filepath.Join(dir, fmt.Sprintf("..v%d", n))
		require.NoError(t, os.Mkdir(d, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(d, "ulan.yaml"), []byte(redactConfig(s.module, mask)), 0o600))
		return filepath.Base(d)
	}
	require.NoError(t, os.Symlink(version(1, "<three>"), filepath.Join(dir, "..data")))
	require.NoError(t, os.Remove(s.file))
	require.NoError(t, os.Symlink(filepath.Join("..data", "ulan.yaml"), s.file))
	require.True(t, s.srv.Reload(ctx, "watch").Ok)
	text, _, err = masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<three>", text)
	tmp := filepath.Join(dir, "..data_tmp")
	require.NoError(t, os.Symlink(version(2, "<four>"), tmp))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "..data")))
	require.True(t, s.srv.Reload(ctx, "watch").Ok)
	text, _, err = masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<four>", text)
}

// TestReloadBrokenModuleFile: the module file replaced by a truncated copy, deleted, or
// changed under a pinned hash is refused with the plugin's key in GetStatus, and the
// running generation keeps serving with the bytes it loaded.
func TestReloadBrokenModuleFile(t *testing.T) {
	s := startReloading(t, "<one>")
	c := clients(s.url)["connect+proto/h2c"]
	pc := ulanv1connect.NewPluginServiceClient(http.DefaultClient, s.url)
	at := atToken(t, c)
	ctx := context.Background()
	wasm, err := os.ReadFile(s.module)
	require.NoError(t, err)
	pinned := strings.Replace(redactConfig(s.module, "<two>"), "    pool_size: 4\n",
		"    pool_size: 4\n    sha256: "+sha256Hex(wasm)+"\n", 1)

	for _, tc := range []struct {
		name, config string
		change       func()
		key          string
	}{
		{"truncated", redactConfig(s.module, "<two>"), func() {
			require.NoError(t, os.WriteFile(s.module, wasm[:len(wasm)/3], 0o600))
		}, "plugins[0].module"},
		{"deleted", redactConfig(s.module, "<two>"), func() { require.NoError(t, os.Remove(s.module)) }, "plugins[0].module"},
		{"hash no longer matches", pinned, func() {
			other := append(append([]byte(nil), wasm...), 0, 2, 1, 'x') // a custom section more
			require.NoError(t, os.WriteFile(s.module, other, 0o600))
		}, "plugins[0].sha256"},
	} {
		tc.change()
		s.write(t, tc.config)
		res, err := pc.Reload(ctx, connect.NewRequest(&ulanv1.ReloadRequest{}))
		require.NoError(t, err, tc.name)
		require.False(t, res.Msg.Result.Ok, tc.name)
		st, err := pc.GetStatus(ctx, connect.NewRequest(&ulanv1.GetStatusRequest{}))
		require.NoError(t, err, tc.name)
		require.Equal(t, uint64(1), st.Msg.Generation, tc.name)
		require.NotEmpty(t, st.Msg.LastReload.Problems, tc.name)
		require.Equal(t, tc.key, st.Msg.LastReload.Problems[0].Key, "%s: %v", tc.name, st.Msg.LastReload.Problems)
		text, gen, err := masked(t, c, at)
		require.NoError(t, err, tc.name)
		require.Equal(t, "<one>", text, tc.name)
		require.Equal(t, uint64(1), gen, tc.name)
		require.NoError(t, os.WriteFile(s.module, wasm, 0o600))
	}
	s.write(t, pinned)
	res := s.srv.Reload(ctx, "watch")
	require.True(t, res.Ok, "%v", res.Problems)
	text, _, err := masked(t, c, at)
	require.NoError(t, err)
	require.Equal(t, "<two>", text)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
