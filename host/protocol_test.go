package host_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/api/apitest"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/scheduler"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// The tests in this file hold the server to what a demanding client of each wire
// protocol relies on: streams that arrive as they are generated, errors and their
// details in each protocol's own form, compression, size limits, deadlines,
// disconnects, and clear answers to calls that are not calls at all.

// httpClients are the transports clients use: HTTP/1.1 (what browsers use for
// gRPC-web and Connect) and h2c.
func httpClients() (http1, h2c *http.Client) {
	p1 := new(http.Protocols)
	p1.SetHTTP1(true)
	p2 := new(http.Protocols)
	p2.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p1}}, &http.Client{Transport: &http.Transport{Protocols: p2}}
}

// protocol is one way of calling the server: a wire protocol on an HTTP version.
type protocol struct {
	name   string
	client *http.Client
	opts   []connect.ClientOption
}

// protocols lists every protocol on every HTTP version it is used with; gRPC
// needs HTTP/2. extra options (connect.WithSendGzip, say) go to each.
func protocols(extra ...connect.ClientOption) []protocol {
	http1, h2c := httpClients()
	with := func(opts ...connect.ClientOption) []connect.ClientOption {
		return append(opts, extra...)
	}
	return []protocol{
		{"connect+json/http1", http1, with(connect.WithProtoJSON())},
		{"connect+proto/http1", http1, with()},
		{"connect+json/h2c", h2c, with(connect.WithProtoJSON())},
		{"connect+proto/h2c", h2c, with()},
		{"grpc/h2c", h2c, with(connect.WithGRPC())},
		{"grpc+json/h2c", h2c, with(connect.WithGRPC(), connect.WithProtoJSON())},
		{"grpc-web/http1", http1, with(connect.WithGRPCWeb())},
		{"grpc-web+json/http1", http1, with(connect.WithGRPCWeb(), connect.WithProtoJSON())},
		{"grpc-web/h2c", h2c, with(connect.WithGRPCWeb())},
	}
}

func (p protocol) inference(url string) ulanv1connect.InferenceServiceClient {
	return ulanv1connect.NewInferenceServiceClient(p.client, url, p.opts...)
}

// isGRPC reports whether p speaks gRPC or gRPC-web (timeouts in grpc-timeout),
// rather than Connect (Connect-Timeout-Ms).
func (p protocol) isGRPC() bool { return strings.HasPrefix(p.name, "grpc") }

// frame prefixes a message with the five bytes of a gRPC, gRPC-web or Connect
// streaming envelope.
func frame(flags byte, msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	out[0] = flags
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// gzipped compresses b.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// bomb returns gzip data that is at most compressed bytes long and expands to
// about a thousand times that (zeros): many gzip members of a MiB of zeros each,
// which every gzip reader reads as one stream.
func bomb(t testing.TB, compressed int) []byte {
	t.Helper()
	member := gzipped(t, make([]byte, 1<<20))
	return bytes.Repeat(member, compressed/len(member))
}

// post sends one raw request and returns the response with its body read.
func post(t *testing.T, c *http.Client, method, url, ctype string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, b
}

// TestStreamsArriveIncrementallyOnEveryProtocol: a stream's messages reach the
// client as they are generated, not buffered to its end, on every protocol and
// HTTP version (gRPC-web on HTTP/1.1 is what browsers use), compressed or not and
// over TLS.
func TestStreamsArriveIncrementallyOnEveryProtocol(t *testing.T) {
	t.Parallel()
	const delay = 150 * time.Millisecond
	words := 6
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{Delay: delay}))
	cases := append(protocols(), protocols(connect.WithSendGzip())...)
	for i := range cases[len(cases)/2:] {
		cases[len(cases)/2+i].name += "+gzip"
	}
	for _, p := range cases {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			st, err := p.inference(r.url).Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", words)}))
			require.NoError(t, err)
			// Buffered, both would arrive together; streamed, they are the other
			// deltas' delays apart.
			require.Greater(t, firstToFinish(t, st), time.Duration(words-3)*delay, "the first delta arrived with the last message")
		})
	}
}

// firstToFinish reads a Generate stream to its end and returns how long
// after its first delta its Finished message arrived.
func firstToFinish(t *testing.T, st *connect.ServerStreamForClient[ulanv1.GenerateResponse]) time.Duration {
	t.Helper()
	defer st.Close()
	var firstDelta, finished time.Time
	for st.Receive() {
		if st.Msg().GetDelta() != nil && firstDelta.IsZero() {
			firstDelta = time.Now()
		}
		if st.Msg().GetFinished() != nil {
			finished = time.Now()
		}
	}
	require.NoError(t, st.Err())
	require.False(t, firstDelta.IsZero() || finished.IsZero(), "a delta and a Finished message")
	return finished.Sub(firstDelta)
}

// TestStreamsArriveIncrementallyOverTLS: the same over TLS, with HTTP/1.1
// (gRPC-web, Connect) and HTTP/2 (every protocol).
func TestStreamsArriveIncrementallyOverTLS(t *testing.T) {
	t.Parallel()
	const delay = 150 * time.Millisecond
	words := 6
	cfg := config.Default()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile = certFile, keyFile
	r := start(t, cfg, host.WithInference(&apitest.Echo{Delay: delay}))
	h1 := new(http.Protocols)
	h1.SetHTTP1(true)
	tls1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Protocols: h1}}
	tls2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	for _, p := range []protocol{
		{"connect/https1", tls1, nil},
		{"grpc-web/https1", tls1, []connect.ClientOption{connect.WithGRPCWeb()}},
		{"connect/h2", tls2, nil},
		{"grpc/h2", tls2, []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web/h2", tls2, []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			st, err := p.inference("https://"+r.addr).Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", words)}))
			require.NoError(t, err)
			require.Greater(t, firstToFinish(t, st), time.Duration(words-3)*delay)
		})
	}
}

// generateReq is generate with a request's headers.
func generateReq(t *testing.T, c ulanv1connect.InferenceServiceClient, req *connect.Request[ulanv1.GenerateRequest]) (result, error) {
	s, err := c.Generate(context.Background(), req)
	if err != nil {
		return result{}, err
	}
	return collect(t, s, (*ulanv1.GenerateResponse).GetStarted, (*ulanv1.GenerateResponse).GetDelta, (*ulanv1.GenerateResponse).GetFinished)
}

// badRequestOf returns the google.rpc.BadRequest detail of err.
func badRequestOf(t *testing.T, err error) *errdetails.BadRequest {
	t.Helper()
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	for _, d := range ce.Details() {
		v, derr := d.Value()
		require.NoError(t, derr)
		if br, ok := v.(*errdetails.BadRequest); ok {
			return br
		}
	}
	t.Fatalf("no BadRequest detail in %v", err)
	return nil
}

// TestErrorDetailsOnEveryProtocol: an invalid request's code, message and
// google.rpc.BadRequest detail reach the client on every protocol, for a
// unary call and for a stream (Connect's end-of-stream message, gRPC's and
// gRPC-web's trailers).
func TestErrorDetailsOnEveryProtocol(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			c := p.inference(r.url)
			st, err := c.Generate(context.Background(), connect.NewRequest(&ulanv1.GenerateRequest{Prompt: "a", Sampling: &ulanv1.SamplingParams{TopP: f32(2)}}))
			require.NoError(t, err)
			require.False(t, st.Receive())
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(st.Err()))
			br := badRequestOf(t, st.Err())
			require.Len(t, br.FieldViolations, 1)
			require.Equal(t, "sampling.top_p", br.FieldViolations[0].Field)

			_, err = c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "a", Pipeline: "NO"}))
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			require.NotEmpty(t, badRequestOf(t, err).FieldViolations)
		})
	}
}

// TestGRPCWebTrailerFrame: a gRPC-web stream that fails after its first
// messages ends with a trailer frame (flag 0x80) in the body that carries
// grpc-status, which is all a browser can read; a call that fails before any
// message may answer trailers-only, in the headers.
func TestGRPCWebTrailerFrame(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{Delay: 100 * time.Millisecond}))
	http1, _ := httpClients()
	req, err := proto.Marshal(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", 50)})
	require.NoError(t, err)
	res, body := post(t, http1, http.MethodPost, r.url+ulanv1connect.InferenceServiceGenerateProcedure,
		"application/grpc-web+proto", frame(0, req), map[string]string{"Grpc-Timeout": "350m"})
	require.Equal(t, http.StatusOK, res.StatusCode)
	var trailer string
	messages := 0
	for len(body) >= 5 {
		n := int(binary.BigEndian.Uint32(body[1:5]))
		require.LessOrEqual(t, 5+n, len(body), "a frame is cut short")
		if body[0]&0x80 != 0 {
			trailer = string(body[5 : 5+n])
		} else {
			messages++
		}
		body = body[5+n:]
	}
	require.Empty(t, body)
	require.Positive(t, messages, "Started, and maybe deltas, before the deadline")
	require.Contains(t, strings.ToLower(trailer), "grpc-status: 4\r\n", "DeadlineExceeded in the trailer frame: %q", trailer)
	require.Empty(t, res.Header.Get("Grpc-Status"), "not in the headers once messages were sent")

	bad, err := proto.Marshal(&ulanv1.GenerateRequest{})
	require.NoError(t, err)
	res, _ = post(t, http1, http.MethodPost, r.url+ulanv1connect.InferenceServiceGenerateProcedure, "application/grpc-web+proto", frame(0, bad), nil)
	require.Equal(t, "3", res.Header.Get("Grpc-Status"))
	require.NotEmpty(t, res.Header.Get("Grpc-Status-Details-Bin"))
}

// TestGzipOnEveryProtocol: gzip-compressed requests are accepted and responses
// are compressed for clients that accept gzip, unary calls and streams alike.
func TestGzipOnEveryProtocol(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	for _, p := range protocols(connect.WithSendGzip()) {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			c := p.inference(r.url)
			text := strings.Repeat("gzip ", 200)
			res, err := c.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: text}))
			require.NoError(t, err)
			require.Len(t, res.Msg.TokenIds, len(text))
			got, err := generate(t, c, &ulanv1.GenerateRequest{Prompt: text})
			require.NoError(t, err)
			require.Equal(t, text, got.text)
		})
	}

	// What the server answers with, seen raw.
	http1, h2c := httpClients()
	tok, err := proto.Marshal(&ulanv1.TokenizeRequest{Text: strings.Repeat("z", 1000)})
	require.NoError(t, err)
	res, body := post(t, http1, http.MethodPost, r.url+ulanv1connect.InferenceServiceTokenizeProcedure, "application/proto",
		gzipped(t, tok), map[string]string{"Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	zr, err := gzip.NewReader(bytes.NewReader(body))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	var tr ulanv1.TokenizeResponse
	require.NoError(t, proto.Unmarshal(plain, &tr))
	require.Len(t, tr.TokenIds, 1000)

	res, _ = post(t, h2c, http.MethodPost, r.url+ulanv1connect.InferenceServiceTokenizeProcedure, "application/grpc",
		frame(1, gzipped(t, tok)), map[string]string{"Grpc-Encoding": "gzip", "Grpc-Accept-Encoding": "gzip"})
	require.Equal(t, "0", res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message"))
	require.Equal(t, "gzip", res.Header.Get("Grpc-Encoding"))
}

// rawCall is one request a client library cannot be made to send: the same
// body framed for each protocol.
type rawCall struct {
	name   string
	client *http.Client
	ctype  string
	frame  bool // enveloped: gRPC, gRPC-web and Connect streams
	header map[string]string
	grpc   bool // the status is in grpc-status, not the HTTP status
}

func rawCalls(encoding string) []rawCall {
	http1, h2c := httpClients()
	return []rawCall{
		{"connect/http1", http1, "application/proto", false, map[string]string{"Content-Encoding": encoding}, false},
		{"grpc/h2c", h2c, "application/grpc", true, map[string]string{"Grpc-Encoding": encoding}, true},
		{"grpc-web/http1", http1, "application/grpc-web+proto", true, map[string]string{"Grpc-Encoding": encoding}, true},
	}
}

// codeOf reads the code of a raw answer: grpc-status (trailers, or headers for a
// trailers-only answer, or gRPC-web's trailer frame) or Connect's JSON error.
func codeOf(t *testing.T, c rawCall, res *http.Response, body []byte) (connect.Code, string) {
	t.Helper()
	if !c.grpc {
		if res.StatusCode == http.StatusOK {
			return 0, ""
		}
		var e struct{ Code, Message string }
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		var code connect.Code
		require.NoError(t, code.UnmarshalText([]byte(e.Code)))
		return code, e.Message
	}
	status, msg := res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
	if status == "" {
		status, msg = res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
	}
	if status == "" && len(body) >= 5 { // gRPC-web's trailer frame
		for _, line := range strings.Split(string(body[5:]), "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			switch strings.ToLower(k) {
			case "grpc-status":
				status = strings.TrimSpace(v)
			case "grpc-message":
				msg = strings.TrimSpace(v)
			}
		}
	}
	require.NotEmpty(t, status, "no grpc-status")
	var code connect.Code
	for _, b := range status {
		code = code*10 + connect.Code(b-'0')
	}
	return code, msg
}

// TestMalformedGzipIsInvalidArgument: a body that says it is gzip and is not
// is refused with InvalidArgument on every protocol.
func TestMalformedGzipIsInvalidArgument(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	for _, c := range rawCalls("gzip") {
		body := []byte("this is not gzip")
		if c.frame {
			body = frame(1, body)
		}
		res, b := post(t, c.client, http.MethodPost, r.url+ulanv1connect.InferenceServiceTokenizeProcedure, c.ctype, body, c.header)
		code, msg := codeOf(t, c, res, b)
		require.Equal(t, connect.CodeInvalidArgument, code, "%s: %s", c.name, msg)
	}
}

// TestCompressedBombIsRefused: a gzip body small enough to pass the transport's
// cap but expanding far past limits.max_request_bytes is refused with
// ResourceExhausted once the limit is passed, on every protocol, without
// inflating the rest of it (which took seconds of CPU for every such request).
func TestCompressedBombIsRefused(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Limits.MaxRequestBytes = 1 * config.MiB
	cfg.Limits.MaxPromptBytes = 512 * config.KiB
	r := start(t, cfg, host.WithInference(&apitest.Echo{}))
	z := bomb(t, 1<<20) // about 1 GiB of zeros
	for _, c := range rawCalls("gzip") {
		body := z
		if c.frame {
			body = frame(1, z)
		}
		begin := time.Now()
		res, b := post(t, c.client, http.MethodPost, r.url+ulanv1connect.InferenceServiceTokenizeProcedure, c.ctype, body, c.header)
		code, msg := codeOf(t, c, res, b)
		require.Equal(t, connect.CodeResourceExhausted, code, "%s: %s", c.name, msg)
		require.Contains(t, msg, "1048576", "%s: the message names the limit", c.name)
		require.Contains(t, msg, "gzip", "%s: refused while decompressing, not after", c.name)
		t.Logf("%s: %v: %s", c.name, time.Since(begin), msg)
	}
	// Health and reflection had no read limit at all, so a bomb there was
	// expanded whole in memory; a smaller one makes the point.
	z = bomb(t, 256<<10)
	for _, path := range []string{"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		for _, c := range rawCalls("gzip") {
			if strings.Contains(path, "Reflection") && !strings.HasPrefix(c.name, "grpc/") {
				continue // a bidi stream: gRPC over HTTP/2 only
			}
			body := z
			if c.frame {
				body = frame(1, z)
			}
			res, b := post(t, c.client, http.MethodPost, r.url+path, c.ctype, body, c.header)
			code, msg := codeOf(t, c, res, b)
			require.Equal(t, connect.CodeResourceExhausted, code, "%s %s: %s", path, c.name, msg)
		}
	}
}

// TestMessageSizeLimitOnEveryProtocol: a message over limits.max_request_bytes is
// ResourceExhausted naming the limit on every protocol, whether it just passes it
// or is far beyond the transport's cap, and so is an envelope whose declared
// length is over the limit, before its bytes arrive.
func TestMessageSizeLimitOnEveryProtocol(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Limits.MaxRequestBytes = 64 * config.KiB
	cfg.Limits.MaxPromptBytes = 32 * config.KiB
	r := start(t, cfg, host.WithInference(&apitest.Echo{}))
	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			for _, n := range []int{65 << 10, 1 << 20} {
				_, err := p.inference(r.url).Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: strings.Repeat("x", n)}))
				require.Equal(t, connect.CodeResourceExhausted, connect.CodeOf(err), "%d bytes: %v", n, err)
				require.Contains(t, err.Error(), "65536", "names the limit")
			}
		})
	}
	for _, c := range rawCalls("identity") {
		if !c.frame {
			continue
		}
		// The prefix promises a GiB; the body stops after a few bytes.
		res, b := post(t, c.client, http.MethodPost, r.url+ulanv1connect.InferenceServiceTokenizeProcedure, c.ctype,
			[]byte{0, 0x40, 0, 0, 0, 1, 2, 3}, nil)
		code, msg := codeOf(t, c, res, b)
		require.Equal(t, connect.CodeResourceExhausted, code, "%s: %s", c.name, msg)
		// A prefix that promises more than the body holds is a broken request.
		tok, err := proto.Marshal(&ulanv1.TokenizeRequest{Text: "hello"})
		require.NoError(t, err)
		res, b = post(t, c.client, http.MethodPost, r.url+ulanv1connect.InferenceServiceTokenizeProcedure, c.ctype, frame(0, tok)[:8], nil)
		code, msg = codeOf(t, c, res, b)
		require.NotEqual(t, connect.Code(0), code, "%s: a cut-off message is not answered", c.name)
		require.Contains(t, msg, "promised", c.name)
	}
}

// TestConnectGetForIdempotentRPCs: the RPCs without side effects answer Connect
// GET requests (cacheable, and what a browser can send without a preflight);
// the others refuse GET with 405.
func TestConnectGetForIdempotentRPCs(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	http1, _ := httpClients()
	get := []connect.ClientOption{connect.WithHTTPGet(), connect.WithProtoJSON()}
	inf := ulanv1connect.NewInferenceServiceClient(http1, r.url, get...)
	tok, err := inf.Tokenize(context.Background(), connect.NewRequest(&ulanv1.TokenizeRequest{Text: "hi"}))
	require.NoError(t, err)
	require.Equal(t, []uint32{'h', 'i'}, tok.Msg.TokenIds)
	_, err = inf.Detokenize(context.Background(), connect.NewRequest(&ulanv1.DetokenizeRequest{TokenIds: []uint32{'h'}}))
	require.NoError(t, err)
	_, err = ulanv1connect.NewModelServiceClient(http1, r.url, get...).GetModel(context.Background(), connect.NewRequest(&ulanv1.GetModelRequest{}))
	require.NoError(t, err)
	plugins := ulanv1connect.NewPluginServiceClient(http1, r.url, get...)
	_, err = plugins.GetStatus(context.Background(), connect.NewRequest(&ulanv1.GetStatusRequest{}))
	require.NoError(t, err)
	_, err = plugins.ListPlugins(context.Background(), connect.NewRequest(&ulanv1.ListPluginsRequest{}))
	require.NoError(t, err)

	msg := base64.RawURLEncoding.EncodeToString([]byte(`{"text":"hi"}`))
	res, body := post(t, http1, http.MethodGet, r.url+ulanv1connect.InferenceServiceTokenizeProcedure+"?connect=v1&encoding=json&base64=1&message="+msg, "", nil, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.JSONEq(t, `{"tokenIds":[104,105],"pieces":["h","i"]}`, string(body))

	// A browser sends a GET cross-origin without a preflight, so one from a page
	// whose origin is not allowed is refused before it runs (a dry run of plugin
	// builds, for ValidateConfig); the same GET from the server's own pages runs.
	validate := r.url + ulanv1connect.PluginServiceValidateConfigProcedure + "?encoding=json&message=" + url.QueryEscape(`{"yaml":"{}"}`)
	res, body = post(t, http1, http.MethodGet, validate, "", nil, map[string]string{"Sec-Fetch-Site": "cross-site"})
	require.Equal(t, http.StatusForbidden, res.StatusCode, "%s", body)
	require.Contains(t, string(body), "server.cors.allowed_origins")
	res, body = post(t, http1, http.MethodGet, validate, "", nil, map[string]string{"Sec-Fetch-Site": "same-origin"})
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)

	for _, proc := range []string{ulanv1connect.InferenceServiceGenerateProcedure, ulanv1connect.InferenceServiceCancelProcedure,
		ulanv1connect.PluginServiceReloadProcedure} {
		res, _ := post(t, http1, http.MethodGet, r.url+proc+"?encoding=json&message={}", "", nil, nil)
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, proc)
		require.Equal(t, "POST", res.Header.Get("Allow"), proc)
	}
}

// TestProtocolRefusesNonCalls: an unknown path is 404, a wrong method 405 and an
// unknown content type 415 (with the accepted ones), all without stack traces.
func TestProtocolRefusesNonCalls(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{}))
	http1, h2c := httpClients()
	tok := ulanv1connect.InferenceServiceTokenizeProcedure
	for _, tt := range []struct {
		name         string
		c            *http.Client
		method, path string
		ctype        string
		status       int
	}{
		{"unknown method", http1, http.MethodPost, "/ulan.v1.InferenceService/Nope", "application/json", http.StatusNotFound},
		{"unknown service", http1, http.MethodPost, "/ulan.v9.Nope/Tokenize", "application/json", http.StatusNotFound},
		{"unknown service over gRPC", h2c, http.MethodPost, "/ulan.v9.Nope/Tokenize", "application/grpc", http.StatusNotFound},
		{"root", http1, http.MethodGet, "/", "", http.StatusNotFound},
		{"PUT", http1, http.MethodPut, tok, "application/json", http.StatusMethodNotAllowed},
		{"DELETE", http1, http.MethodDelete, tok, "application/json", http.StatusMethodNotAllowed},
		{"text/plain", http1, http.MethodPost, tok, "text/plain", http.StatusUnsupportedMediaType},
		{"no content type", http1, http.MethodPost, tok, "", http.StatusUnsupportedMediaType},
		{"unknown codec over gRPC", h2c, http.MethodPost, tok, "application/grpc+xml", http.StatusUnsupportedMediaType},
		{"form", http1, http.MethodPost, tok, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
	} {
		res, body := post(t, tt.c, tt.method, r.url+tt.path, tt.ctype, []byte(`{}`), nil)
		require.Equal(t, tt.status, res.StatusCode, "%s: %s", tt.name, body)
		require.NotContains(t, string(body), "goroutine", tt.name)
		require.NotContains(t, string(body), ".go:", tt.name)
		if tt.status == http.StatusUnsupportedMediaType {
			require.Contains(t, res.Header.Get("Accept-Post"), "application/json", tt.name)
		}
	}
}

// TestTimeoutHeaders: a Connect-Timeout-Ms or grpc-timeout shorter than the
// generation ends the stream with DeadlineExceeded, after a Finished message
// that says why, on every protocol; a malformed one is InvalidArgument. The
// header is sent as a browser would, with no deadline on the client's side.
func TestTimeoutHeaders(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default(), host.WithInference(&apitest.Echo{Delay: 50 * time.Millisecond}))
	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			header, value, bad := "Connect-Timeout-Ms", "300", "soon"
			if p.isGRPC() {
				header, value, bad = "Grpc-Timeout", "300m", "300x"
			}
			c := p.inference(r.url)
			req := connect.NewRequest(&ulanv1.GenerateRequest{Prompt: strings.Repeat("w ", 200)})
			req.Header().Set(header, value)
			begin := time.Now()
			got, err := generateReq(t, c, req)
			require.Equal(t, connect.CodeDeadlineExceeded, connect.CodeOf(err), "%v", err)
			require.Less(t, time.Since(begin), 5*time.Second)
			require.Equal(t, ulanv1.FinishReason_FINISH_REASON_CANCELLED, got.finished.GetFinishReason())
			require.Contains(t, got.finished.GetMessage(), "deadline")

			treq := connect.NewRequest(&ulanv1.TokenizeRequest{Text: "a"})
			treq.Header().Set(header, bad)
			_, err = c.Tokenize(context.Background(), treq)
			require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			require.Contains(t, err.Error(), "timeout")
		})
	}
}

// TestHealthOnEveryProtocol: the health service answers on every protocol, not
// only gRPC (TestGRPCGoClient has grpc-go's health and reflection clients).
func TestHealthOnEveryProtocol(t *testing.T) {
	t.Parallel()
	r := start(t, config.Default())
	for _, p := range protocols() {
		c := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](p.client, r.url+"/grpc.health.v1.Health/Check", p.opts...)
		res, err := c.CallUnary(context.Background(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: ulanv1connect.InferenceServiceName}))
		require.NoError(t, err, p.name)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.Msg.Status, p.name)
		_, err = c.CallUnary(context.Background(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: "nope.Service"}))
		require.Equal(t, connect.CodeNotFound, connect.CodeOf(err), p.name)

		watch := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](p.client, r.url+"/grpc.health.v1.Health/Watch", p.opts...)
		for service, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
			"":             healthpb.HealthCheckResponse_SERVING,
			"nope.Service": healthpb.HealthCheckResponse_SERVICE_UNKNOWN,
		} {
			ctx, cancel := context.WithCancel(context.Background())
			st, err := watch.CallServerStream(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{Service: service}))
			require.NoError(t, err, p.name)
			require.True(t, st.Receive(), "%s: %v", p.name, st.Err())
			require.Equal(t, want, st.Msg().Status, p.name)
			cancel()
			st.Close()
		}
	}
	// The JSON is the standard schema's, as reflection describes it.
	http1, _ := httpClients()
	res, body := post(t, http1, http.MethodPost, r.url+"/grpc.health.v1.Health/Check", "application/json", []byte(`{}`), nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.JSONEq(t, `{"status":"SERVING"}`, string(body))
}

// TestStreamEndsFreeTheSequence: with a model, a stream whose client goes away
// mid-stream (on every protocol) or whose deadline passes frees its sequence and
// its KV cache.
func TestStreamEndsFreeTheSequence(t *testing.T) {
	s := startServing(t, scheduler.Config{})
	long := &ulanv1.GenerateRequest{Prompt: "Long", Sampling: &ulanv1.SamplingParams{MaxTokens: i32(4000), IgnoreEos: true}}
	freed := func() bool { st := s.p.Stats(); return st.CacheUsed == 0 && st.Running == 0 && st.Queued == 0 }
	for _, p := range protocols() {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := p.inference(s.url).Generate(ctx, connect.NewRequest(long))
		require.NoError(t, err, p.name)
		for deltas := 0; deltas < 3 && st.Receive(); {
			if st.Msg().GetDelta() != nil {
				deltas++
			}
		}
		require.Greater(t, s.p.Stats().CacheUsed, 0, p.name)
		cancel() // the client goes away
		require.Eventually(t, freed, 10*time.Second, 10*time.Millisecond, "%s: disconnect", p.name)
		st.Close()

		req := connect.NewRequest(long)
		// Well inside the time 4000 tokens take, on any machine.
		header, value := "Connect-Timeout-Ms", "100"
		if p.isGRPC() {
			header, value = "Grpc-Timeout", "100m"
		}
		req.Header().Set(header, value)
		_, err = generateReq(t, p.inference(s.url), req)
		require.Equal(t, connect.CodeDeadlineExceeded, connect.CodeOf(err), "%s: %v", p.name, err)
		require.Eventually(t, freed, 10*time.Second, 10*time.Millisecond, "%s: deadline", p.name)
	}
}
