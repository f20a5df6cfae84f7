package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/api/apitest"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// scripted is a test double whose Generate and Chat send the deltas given,
// then finish with finish (or, when finish is nil, wait for the client to
// go away). It records the last request's sampling parameters and closes
// sent, when not nil, once the deltas are out.
type scripted struct {
	apitest.Echo
	deltas []*ulanv1.Delta
	finish *ulanv1.Finished
	sent   chan struct{}

	mu       sync.Mutex
	sampling *ulanv1.SamplingParams
}

func (s *scripted) Generate(ctx context.Context, req *ulanv1.GenerateRequest, out api.Stream) error {
	s.mu.Lock()
	s.sampling = req.Sampling
	s.mu.Unlock()
	return s.play(ctx, out)
}

func (s *scripted) Chat(ctx context.Context, req *ulanv1.ChatRequest, out api.Stream) error {
	s.mu.Lock()
	s.sampling = req.Sampling
	s.mu.Unlock()
	return s.play(ctx, out)
}

func (s *scripted) play(ctx context.Context, out api.Stream) error {
	if err := out.Start(&ulanv1.Started{Model: "scripted"}); err != nil {
		return err
	}
	for _, d := range s.deltas {
		if err := out.Delta(d); err != nil {
			return err
		}
	}
	if s.sent != nil {
		close(s.sent)
	}
	if s.finish == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return out.Finish(s.finish)
}

func (s *scripted) lastSampling() *ulanv1.SamplingParams {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sampling
}

// silentServer accepts connections and never answers, and returns its
// address.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ulanBinary builds ulan once for the package's tests that run it as a
// process.
func ulanBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ulan-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ulan")
		build := exec.Command("go", "build", "-o", binPath, ".")
		build.Stderr = os.Stderr
		binErr = build.Run()
	})
	require.NoError(t, binErr)
	return binPath
}

// ulanCtx runs one command line in this process under ctx.
func ulanCtx(ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestBadAddr: a malformed --addr is refused before any connection, with
// the flag and the value named, rather than surfacing as a transport error
// ("http: no Host in request URL") or dialing port 80.
func TestBadAddr(t *testing.T) {
	t.Parallel()
	for addr, why := range map[string]string{
		"http://":         "the URL has no host",
		"http://:":        "the URL has no host",
		":":               "no port",
		"localhost":       "missing port in address",
		"127.0.0.1:99999": `port "99999" is not a number from 1 to 65535`,
		"127.0.0.1:0":     `port "0" is not a number from 1 to 65535`,
		"/tmp/ulan.sock":  "unix sockets are not supported",
		"unix:/tmp/u":     "unix sockets are not supported",
		"ftp://host:21":   `the scheme "ftp" is not supported`,
		"http://h:1?q=1":  "the URL has a query or fragment",
	} {
		for _, args := range [][]string{{"tokenize", "x"}, {"generate", "x"}, {"chat", "x"}} {
			code, out, errOut := ulan(t, "", append(args, "--addr", addr)...)
			require.Equal(t, 1, code, addr)
			require.Empty(t, out)
			require.Equal(t, `ulan: --addr "`+addr+`": `+why+"; give HOST:PORT, such as 127.0.0.1:8080, or an http:// or https:// URL\n", errOut)
		}
	}
}

// TestAddrURL: --addr takes a URL, with or without a trailing slash, as
// well as HOST:PORT.
func TestAddrURL(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	for _, a := range []string{addr, "http://" + addr, "http://" + addr + "/"} {
		code, out, errOut := ulan(t, "", "tokenize", "--addr", a, "ab")
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "97 98\n", out)
	}
}

// TestSilentServer: a server that accepts the connection but never answers
// holds the client only as long as --timeout, and the error names the flag;
// a negative --timeout is refused.
func TestSilentServer(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	for _, args := range [][]string{
		{"tokenize", "x"},
		{"generate", "x"},
		{"chat", "x"},
		{"generate", "--protocol", "grpc", "x"},
	} {
		code, out, errOut := ulan(t, "", append(args, "--addr", addr, "--timeout", "200ms")...)
		require.Equal(t, 1, code, args)
		require.Empty(t, out)
		require.Equal(t, "ulan: deadline_exceeded: no complete answer within --timeout 200ms\n", errOut, args)
	}
	code, _, errOut := ulan(t, "", "tokenize", "--addr", addr, "--timeout", "-1s", "x")
	require.Equal(t, 1, code)
	require.Equal(t, "ulan: --timeout -1s: must not be negative (0 waits as long as the server takes)\n", errOut)
}

// TestInterrupted: a command stopped by a signal (its context ending) says
// so in one line and exits 130, whether it waits on a silent server, on a
// stream, or on standard input.
func TestInterrupted(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	for _, args := range [][]string{{"tokenize", "x"}, {"generate", "x"}, {"chat", "x"}} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		code, out, errOut := ulanCtx(ctx, "", append(args, "--addr", addr)...)
		require.Equal(t, exitInterrupted, code, args)
		require.Empty(t, out)
		require.Equal(t, "ulan: interrupted\n", errOut)
	}

	// Chat waiting for a line that never comes.
	r, w := net.Pipe()
	t.Cleanup(func() { _ = w.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"chat", "--addr", addr}, r, &out, &errOut)
	require.Equal(t, exitInterrupted, code)
	require.Equal(t, "ulan: interrupted\n", errOut.String())
}

// TestSignalBinary: Ctrl-C (SIGINT) stops `ulan chat` waiting for a line
// of input, which a read of a terminal would otherwise hold until Enter,
// and the process says so and exits 130.
func TestSignalBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	cmd := exec.Command(ulanBinary(t), "chat", "--addr", "127.0.0.1:1")
	stdin, err := cmd.StdinPipe() // held open: no line, no end of input
	require.NoError(t, err)
	t.Cleanup(func() { _ = stdin.Close() })
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// The signal handler is installed before main runs the command; a
	// signal sent too early would kill the process outright, so wait
	// until it is running.
	time.Sleep(time.Second)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, exitInterrupted, exit.ExitCode())
		require.Equal(t, "ulan: interrupted\n", stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("ulan chat did not stop on SIGINT")
	}
}

// TestStreamCutShort: when a stream ends in an error after some text, the
// text's line is ended on stdout so that the error, on stderr, starts a
// line of its own.
func TestStreamCutShort(t *testing.T) {
	t.Parallel()
	inf := &scripted{deltas: []*ulanv1.Delta{{Content: "partial"}}, sent: make(chan struct{})}
	addr := startServer(t, inf)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-inf.sent
		time.Sleep(50 * time.Millisecond) // let the delta reach the client
		cancel()
	}()
	code, out, errOut := ulanCtx(ctx, "", "generate", "--addr", addr, "x")
	require.Equal(t, exitInterrupted, code)
	require.Equal(t, "partial\n", out)
	require.Equal(t, "ulan: interrupted\n", errOut)
}

// TestReasoningOnStderr: reasoning goes to stderr, on a line of its own;
// the reply goes to stdout.
func TestReasoningOnStderr(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &scripted{
		deltas: []*ulanv1.Delta{{Reasoning: "think"}, {Reasoning: "ing"}, {Content: "answer"}},
		finish: &ulanv1.Finished{FinishReason: ulanv1.FinishReason_FINISH_REASON_STOP},
	})
	code, out, errOut := ulan(t, "", "chat", "--addr", addr, "--thinking", "on", "why?")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "answer\n", out)
	require.Equal(t, "thinking\n", errOut)
}

// TestFinishReasons: a stream the server cancelled or failed exits 1 with
// the server's message; a content filter is noted on stderr and exits 0.
func TestFinishReasons(t *testing.T) {
	t.Parallel()
	for reason, want := range map[ulanv1.FinishReason]struct {
		code   int
		stderr string
	}{
		ulanv1.FinishReason_FINISH_REASON_CANCELLED:      {1, "ulan: generation cancelled by the server: drain timed out\n"},
		ulanv1.FinishReason_FINISH_REASON_ERROR:          {1, "ulan: generation failed: drain timed out\n"},
		ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER: {0, "ulan: content_filter: drain timed out\n"},
	} {
		addr := startServer(t, &scripted{
			deltas: []*ulanv1.Delta{{Content: "some"}},
			finish: &ulanv1.Finished{FinishReason: reason, Message: "drain timed out"},
		})
		code, out, errOut := ulan(t, "", "generate", "--addr", addr, "x")
		require.Equal(t, want.code, code, reason)
		require.Equal(t, "some\n", out, reason)
		require.Equal(t, want.stderr, errOut, reason)
	}
}

// TestAnnotationsOnStderr: what the server's pipeline did instead of what
// was asked (a plugin's fallback, a redaction) is noted on stderr, a line
// each, but for a hook stop whose message the finish line already gave.
func TestAnnotationsOnStderr(t *testing.T) {
	t.Parallel()
	fallback := &ulanv1.Annotation{Kind: ulanv1.AnnotationKind_ANNOTATION_KIND_PLUGIN_FALLBACK, Source: "tok",
		Message: "tokenizer plugin tok failed (trap); the model's tokenizer tokenized the prompt"}
	stop := &ulanv1.Annotation{Kind: ulanv1.AnnotationKind_ANNOTATION_KIND_HOOK_STOP, Source: "pii", Message: "hook pii stopped the output"}
	addr := startServer(t, &scripted{
		deltas: []*ulanv1.Delta{{Content: "some"}},
		finish: &ulanv1.Finished{FinishReason: ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER, Message: stop.Message,
			Annotations: []*ulanv1.Annotation{fallback, stop}},
	})
	code, out, errOut := ulan(t, "", "generate", "--addr", addr, "x")
	require.Equal(t, 0, code)
	require.Equal(t, "some\n", out)
	require.Equal(t, "ulan: content_filter: hook pii stopped the output\nulan: note from tok: "+fallback.Message+"\n", errOut)

	addr = startServer(t, &noted{fallback: fallback})
	code, out, errOut = ulan(t, "", "tokenize", "--addr", addr, "ab")
	require.Equal(t, 0, code)
	require.Equal(t, "97 98\n", out)
	require.Equal(t, "ulan: note from tok: "+fallback.Message+"\n", errOut)
}

// noted is Echo whose Tokenize answers carry one annotation.
type noted struct {
	apitest.Echo
	fallback *ulanv1.Annotation
}

func (n *noted) Tokenize(ctx context.Context, req *ulanv1.TokenizeRequest) (*ulanv1.TokenizeResponse, error) {
	res, err := n.Echo.Tokenize(ctx, req)
	if res != nil {
		res.Annotations = []*ulanv1.Annotation{n.fallback}
	}
	return res, err
}

// TestGenerateFlagsForTheOtherMode: flags of in-process generation are
// refused when calling a server and the other way round, rather than
// ignored; --greedy asks a server for temperature 0.
func TestGenerateFlagsForTheOtherMode(t *testing.T) {
	t.Parallel()
	inf := &scripted{finish: &ulanv1.Finished{FinishReason: ulanv1.FinishReason_FINISH_REASON_STOP}}
	addr := startServer(t, inf)
	for _, flag := range []string{"--threads=2", "--top=3"} {
		code, out, errOut := ulan(t, "", "generate", "--addr", addr, flag, "x")
		require.Equal(t, 1, code, flag)
		require.Empty(t, out)
		require.Contains(t, errOut, "ulan: "+strings.Split(flag, "=")[0]+" needs --model")
	}
	code, _, errOut := ulan(t, "", "generate", "--addr", addr, "--greedy", "x")
	require.Equal(t, 0, code, errOut)
	require.NotNil(t, inf.lastSampling().Temperature)
	require.Zero(t, inf.lastSampling().GetTemperature())
	code, _, errOut = ulan(t, "", "generate", "--addr", addr, "--greedy", "--temperature", "0.7", "x")
	require.Equal(t, 1, code)
	require.Equal(t, "ulan: --greedy and --temperature 0.7 disagree: greedy decoding is temperature 0\n", errOut)

	model := tinyModel(t)
	for _, flag := range []string{"--addr=" + addr, "--protocol=grpc", "--timeout=1s", "--add-special-tokens"} {
		code, out, errOut := ulan(t, "", "generate", "--model", model, "--prompt-ids", "1", flag)
		require.Equal(t, 1, code, flag)
		require.Empty(t, out)
		require.Equal(t, "ulan: "+strings.Split(flag, "=")[0]+" is for calling a server; --model runs the model in this process\n", errOut)
	}
}

// TestGenerateInProcessChecks: in-process generation refuses bad values
// before it loads the model or runs, and stops when interrupted.
func TestGenerateInProcessChecks(t *testing.T) {
	t.Parallel()
	model := tinyModel(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--threads", "0"}, "ulan: --threads 0: must be at least 1\n"},
		{[]string{"--threads", "-3"}, "ulan: --threads -3: must be at least 1\n"},
		{[]string{"--max-tokens", "5000"}, "ulan: --max-tokens 5000: 1 + 5000 tokens are beyond the model's context of 4096\n"},
		{[]string{"hello"}, "ulan: with --model, the prompt is token ids: give --prompt-ids instead of text (or call a server, which tokenizes)\n"},
	} {
		args := append([]string{"generate", "--model", model}, c.args...)
		if c.args[0] != "hello" {
			args = append(args, "--prompt-ids", "1")
		}
		code, out, errOut := ulan(t, "", args...)
		require.Equal(t, 1, code, c.args)
		require.Empty(t, out)
		require.Equal(t, c.want, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, out, errOut := ulanCtx(ctx, "", "generate", "--model", model, "--prompt-ids", "1", "--max-tokens", "4000")
	require.Equal(t, exitInterrupted, code)
	require.Empty(t, out)
	require.Equal(t, "ulan: interrupted\n", errOut)
}

// TestBenchInterrupted: bench checks for a signal between engine steps.
func TestBenchInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, out, errOut := ulanCtx(ctx, "", "bench", "--model", tinyModel(t), "--threads", "1", "--prompt", "8", "--gen", "1000", "--batch", "1")
	require.Equal(t, exitInterrupted, code)
	require.Empty(t, out)
	require.Equal(t, "ulan: interrupted\n", errOut)
}

// TestChatInput: standard input that ends at once, or holds only blank
// lines, makes no turn and exits 0; a line beyond the limit is refused by
// name.
func TestChatInput(t *testing.T) {
	t.Parallel()
	addr := startServer(t, &apitest.Echo{})
	for _, in := range []string{"", "\n  \n\t\n", "\r\n"} {
		code, out, errOut := ulan(t, in, "chat", "--addr", addr)
		require.Equal(t, 0, code, errOut)
		require.Empty(t, out)
		require.Empty(t, errOut)
	}
	code, out, errOut := ulan(t, "no newline at the end", "chat", "--addr", addr)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "no newline at the end\n", out)

	code, out, errOut = ulan(t, "hi\n"+strings.Repeat("a", maxLine+1)+"\n", "chat", "--addr", addr)
	require.Equal(t, 1, code)
	require.Equal(t, "hi\n", out, "the turns before the long line are answered")
	require.Equal(t, "ulan: standard input: a line is longer than 16 MiB\n", errOut)
}

// TestNoArguments: commands that take no arguments say so, rather than
// cobra's "unknown command".
func TestNoArguments(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"version", "serve", "bench"} {
		code, out, errOut := ulan(t, "", cmd, "extra")
		require.Equal(t, 1, code)
		require.Empty(t, out)
		require.Equal(t, "ulan: ulan "+cmd+" takes no arguments, got \"extra\"\n", errOut)
	}
}

// TestUsageErrors: cobra's own errors (unknown flags, bad values, argument
// counts) are one line on stderr with exit status 1, and help goes to
// stdout with 0.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"generate", "--bogus", "x"},
		{"generate", "--max-tokens", "abc", "x"},
		{"generate", "a", "b"},
		{"tokenize"},
		{"tokenize", "a", "b"},
		{"nonsense"},
	} {
		code, out, errOut := ulan(t, "", args...)
		require.Equal(t, 1, code, args)
		require.Empty(t, out, args)
		require.True(t, strings.HasPrefix(errOut, "ulan: "), errOut)
		require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	}
	code, out, errOut := ulan(t, "", "generate", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Usage:\n  ulan generate [flags] PROMPT")
	require.Empty(t, errOut)
}

// TestNotAUlanServer: an HTTP server that is not ulan's gives an error
// that says so, whatever the protocol.
func TestNotAUlanServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()
	for _, protocol := range []string{"connect", "grpcweb"} {
		for _, cmd := range []string{"tokenize", "generate"} {
			code, out, errOut := ulan(t, "", cmd, "--addr", addr, "--protocol", protocol, "x")
			require.Equal(t, 1, code)
			require.Empty(t, out)
			require.True(t, strings.HasPrefix(errOut, "ulan: unimplemented: "), errOut)
			require.True(t, strings.HasSuffix(errOut, "404 Not Found (is --addr "+addr+" a ulan server?)\n"), errOut)
		}
	}
	code, _, errOut := ulan(t, "", "tokenize", "--addr", addr, "--protocol", "grpc", "x")
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(errOut, "ulan: unavailable: "), errOut)
	require.True(t, strings.HasSuffix(errOut, "(the server at --addr "+addr+" speaks HTTP/1.1 only; --protocol grpc needs HTTP/2)\n"), errOut)
}

// TestPlainHTTPToTLSServer checks that a plain-HTTP call to a TLS server
// says to give an https:// address, whatever the protocol.
func TestPlainHTTPToTLSServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	for _, protocol := range []string{"connect", "grpc", "grpcweb"} {
		code, out, errOut := ulan(t, "", "tokenize", "--addr", addr, "--protocol", protocol, "x")
		require.Equal(t, 1, code, protocol)
		require.Empty(t, out, protocol)
		require.True(t, strings.HasSuffix(errOut, "(the server at --addr "+addr+" expects TLS; give --addr https://"+addr+")\n"), errOut)
	}
}
