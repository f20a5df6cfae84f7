package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/host/config"
)

// startServer runs a server in this process on a loopback port and returns
// its address.
func startServer(t *testing.T, inf api.Inference) string {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	opts := []host.Option{host.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if inf != nil {
		opts = append(opts, host.WithInference(inf))
	}
	srv, err := host.New(cfg, opts...)
	require.NoError(t, err)
	ln, err := srv.Listen()
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	go func() { _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { stop(); _ = srv.Close() })
	return ln.Addr().String()
}

// ulan runs one command line in this process.
func ulan(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGenerateStreamsText(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	for _, protocol := range []string{"connect", "grpc", "grpcweb"} {
		code, out, errOut := ulan(t, "", "generate", "--addr", addr, "--protocol", protocol, "--temperature", "0", "hello world")
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "hello world\n", out, protocol)
	}
}

func TestGenerateJSON(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	code, out, errOut := ulan(t, "", "generate", "--addr", addr, "--json", "hi")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	var delta struct {
		Delta struct {
			Content  string
			TokenIDs []int `json:"tokenIds"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &delta))
	require.Equal(t, "hi", delta.Delta.Content)
	require.Equal(t, []int{'h', 'i'}, delta.Delta.TokenIDs)
	require.Contains(t, lines[0], `"generationId":"gen_`)
	require.Contains(t, lines[2], `"finishReason":"FINISH_REASON_STOP"`)
}

func TestGenerateTokenIDs(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	code, out, errOut := ulan(t, "", "generate", "--addr", addr, "--prompt-ids", "104, 105")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "hi\n", out)
	code, _, errOut = ulan(t, "", "generate", "--addr", addr, "--prompt-ids", "1,x")
	require.Equal(t, 1, code)
	require.Equal(t, "ulan: --prompt-ids: \"x\" is not a token id\n", errOut)
}

func TestServerErrorIsOneLine(t *testing.T) {
	t.Parallel()
	addr := startServer(t, nil)
	for _, args := range [][]string{
		{"generate", "--addr", addr, "hello"},
		{"chat", "--addr", addr, "hello"},
		{"tokenize", "--addr", addr, "hello"},
	} {
		code, out, errOut := ulan(t, "", args...)
		require.Equal(t, 1, code)
		require.Empty(t, out)
		require.Equal(t, "ulan: unavailable: no model is loaded on this server\n", errOut, args[0])
	}
	code, _, errOut := ulan(t, "", "generate", "--addr", addr, "--top-p", "2", "hello")
	require.Equal(t, 1, code)
	require.Equal(t, "ulan: invalid_argument: sampling.top_p: 2 is out of range; must be in (0, 1]\n", errOut)
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	code, _, errOut := ulan(t, "", "tokenize", "--addr", "127.0.0.1:1", "x")
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(errOut, "ulan: unavailable: "), errOut)
	require.Equal(t, 1, strings.Count(errOut, "\n"))
}

func TestTokenize(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	code, out, _ := ulan(t, "", "tokenize", "--addr", addr, "ab")
	require.Equal(t, 0, code)
	require.Equal(t, "97 98\n", out)
	code, out, _ = ulan(t, "", "tokenize", "--addr", addr, "--json", "ab")
	require.Equal(t, 0, code)
	require.JSONEq(t, `{"tokenIds":[97,98],"pieces":["a","b"]}`, out)
}

func TestChatTurnsFromStdin(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	code, out, errOut := ulan(t, "first turn\n\nsecond turn\n", "chat", "--addr", addr, "--system", "be brief", "--thinking", "off")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "first turn\nsecond turn\n", out)
	code, _, errOut = ulan(t, "", "chat", "--addr", addr, "--thinking", "lots", "x")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--thinking")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := ulan(t, "", "version")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "ulan "), out)
}

func TestOnSignals(t *testing.T) {
	t.Parallel()
	sigs := make(chan os.Signal, 2)
	var drained, forced atomic.Int32
	done := make(chan struct{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		onSignals(sigs, log, func() { drained.Add(1) }, func() { forced.Add(1) })
		close(done)
	}()
	sigs <- syscall.SIGTERM
	require.Eventually(t, func() bool { return drained.Load() == 1 }, time.Second, time.Millisecond)
	require.Zero(t, forced.Load(), "one signal only drains")
	sigs <- syscall.SIGINT
	<-done
	require.Equal(t, int32(1), forced.Load(), "a second signal forces the stop")
}

// TestServeBinary builds ulan and runs `ulan serve` as the README does: it
// serves the built-in demo model (written into a cache directory of its
// own), tokenizes with it, and exits 0 on SIGTERM. A bad configuration stops
// start-up with the key named.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := ulanBinary(t)

	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && lines.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "serving" {
			addr = rec.Addr
		}
	}
	require.NotEmpty(t, addr, "the server logs the address it serves on")
	go func() {
		for lines.Scan() {
		}
	}()

	out, err := exec.Command(bin, "tokenize", "--addr", addr, "Hello, world!").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, "19923 14 2058 3\n", string(out), "the demo model has DeepSeek's tokenizer")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "a drained server exits 0")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("server:\n  drain_timeout: soon\n"), 0o600))
	out, err = exec.Command(bin, "serve", "--config", bad).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "server.drain_timeout")
}
