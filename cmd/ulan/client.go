package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/proto/gen/ulan/v1/ulanv1connect"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	addr     string
	protocol string
	json     bool
	timeout  time.Duration
}

func (c *clientFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.addr, "addr", config.Default().Server.Listen, "server address: HOST:PORT, or an http:// or https:// URL")
	f.StringVar(&c.protocol, "protocol", "connect", "wire protocol: connect, grpc or grpcweb")
	f.BoolVar(&c.json, "json", false, "print each response message as one line of JSON (token ids included)")
	f.DurationVar(&c.timeout, "timeout", 0, "give up after this long; 0 waits as long as the server takes (Ctrl-C stops)")
}

// baseURL turns --addr into the server's base URL: a bare HOST:PORT means
// plain HTTP. The host may be empty (":8080", this machine); the port may
// not, except in a URL, where the scheme's port applies.
func (c *clientFlags) baseURL() (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("--addr %q: %s; give HOST:PORT, such as 127.0.0.1:8080, or an http:// or https:// URL", c.addr, why)
	}
	if scheme, _, ok := strings.Cut(c.addr, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return "", bad(fmt.Sprintf("the scheme %q is not supported", scheme))
		}
		u, err := url.Parse(c.addr)
		switch {
		case err != nil:
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return "", bad(err.Error())
		case u.Hostname() == "":
			return "", bad("the URL has no host")
		case u.Port() != "" && !validPort(u.Port()):
			return "", bad(fmt.Sprintf("port %q is not a number from 1 to 65535", u.Port()))
		case u.RawQuery != "" || u.Fragment != "":
			return "", bad("the URL has a query or fragment")
		}
		return strings.TrimSuffix(c.addr, "/"), nil
	}
	if strings.HasPrefix(c.addr, "/") || strings.HasPrefix(c.addr, "unix:") {
		return "", bad("unix sockets are not supported")
	}
	_, port, err := net.SplitHostPort(c.addr)
	switch {
	case err != nil:
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", bad(ae.Err)
		}
		return "", bad(err.Error())
	case port == "":
		return "", bad("no port")
	case !validPort(port):
		return "", bad(fmt.Sprintf("port %q is not a number from 1 to 65535", port))
	}
	return "http://" + c.addr, nil
}

func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n > 0
}

// options returns the HTTP client and connect options for --protocol. gRPC
// needs HTTP/2, which over plain HTTP means h2c.
func (c *clientFlags) options() (*http.Client, []connect.ClientOption, error) {
	protocols := new(http.Protocols)
	var opts []connect.ClientOption
	switch c.protocol {
	case "connect":
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
	case "grpc":
		protocols.SetUnencryptedHTTP2(true)
		protocols.SetHTTP2(true)
		opts = append(opts, connect.WithGRPC())
	case "grpcweb":
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, nil, fmt.Errorf("--protocol %q: use connect, grpc or grpcweb", c.protocol)
	}
	return &http.Client{Transport: &http.Transport{Protocols: protocols}}, opts, nil
}

// inference checks the flags and returns a client of the server's
// InferenceService.
func (c *clientFlags) inference() (ulanv1connect.InferenceServiceClient, error) {
	if c.timeout < 0 {
		return nil, fmt.Errorf("--timeout %s: must not be negative (0 waits as long as the server takes)", c.timeout)
	}
	base, err := c.baseURL()
	if err != nil {
		return nil, err
	}
	hc, opts, err := c.options()
	if err != nil {
		return nil, err
	}
	return ulanv1connect.NewInferenceServiceClient(hc, base, opts...), nil
}

// context bounds one call by --timeout.
func (c *clientFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// explain names --timeout in the error of a call that ran past it (ctx is
// the call's context), rather than connect's "context deadline exceeded",
// and says what the transport errors of a server that is not ulan's mean.
func (c *clientFlags) explain(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case c.timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: no complete answer within --timeout %s", connect.CodeDeadlineExceeded, c.timeout)
	case connect.CodeOf(err) == connect.CodeUnimplemented && strings.Contains(err.Error(), "404 Not Found"):
		return fmt.Errorf("%w (is --addr %s a ulan server?)", err, c.addr)
	case ctx.Err() == nil && transportFailure(err):
		msg := err.Error()
		if ce := new(connect.Error); errors.As(err, &ce) {
			msg = ce.Message()
		}
		if why := c.diagnose(); why != "" {
			msg += " (" + why + ")"
		}
		// connect calls a reset or broken connection canceled, which
		// reads as if the user had stopped the call.
		return connect.NewError(connect.CodeUnavailable, errors.New(msg))
	}
	return err
}

// transportFailure reports whether err may come from the connection or
// from talking to the wrong kind of server rather than from a ulan
// server's answer: connect reports a refused or reset connection as
// unavailable or canceled, and an HTTP error page it cannot read as
// internal.
func transportFailure(err error) bool {
	if connect.IsWireError(err) {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeCanceled:
		return true
	case connect.CodeInternal:
		return strings.Contains(err.Error(), "400 Bad Request")
	}
	return false
}

// diagnose probes the plain-HTTP server at --addr after a call failed in
// its transport, and says why the call could not work, or "" when it
// cannot tell. A TLS server answers plain HTTP with its own 400. An
// HTTP/1.1-only server answers h2c's preface with an HTTP/1.1 error, a
// reset or a plain close, depending on timing, so the failed call's error
// cannot tell it; an HTTP/1.1 request that works next to an h2c one that
// does not can.
func (c *clientFlags) diagnose() string {
	base, err := c.baseURL()
	if err != nil || !strings.HasPrefix(base, "http://") {
		return ""
	}
	status, body, err := probe(base, false)
	switch {
	case err != nil:
		return ""
	case status == http.StatusBadRequest && strings.Contains(body, "HTTPS server"):
		return fmt.Sprintf("the server at --addr %s expects TLS; give --addr https://%s", c.addr, strings.TrimPrefix(base, "http://"))
	case c.protocol == "grpc":
		if _, _, err := probe(base, true); err != nil {
			return fmt.Sprintf("the server at --addr %s speaks HTTP/1.1 only; --protocol grpc needs HTTP/2", c.addr)
		}
	}
	return ""
}

// probe sends GET base/ over HTTP/1.1, or over h2c when h2c is set, and
// returns the answer's status and the start of its body.
func probe(base string, h2c bool) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	if err != nil {
		return 0, "", err
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(!h2c)
	protocols.SetUnencryptedHTTP2(h2c)
	transport := &http.Transport{Protocols: protocols}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(body), nil
}

// samplingFlags fills SamplingParams from the flags the user set, leaving
// the others unset so the server's defaults apply.
type samplingFlags struct {
	f *pflag.FlagSet
	p ulanv1.SamplingParams
}

func (s *samplingFlags) register(f *pflag.FlagSet) {
	s.f = f
	f.Float32("temperature", 0, "sampling temperature; 0 is greedy")
	f.Float32("top-p", 0, "nucleus sampling mass, in (0, 1]")
	f.Int32("top-k", 0, "keep the k most likely tokens; 0 disables")
	f.Float32("min-p", 0, "drop tokens below min-p times the top probability")
	f.Uint64("seed", 0, "seed for reproducible sampling")
	f.Int32("max-tokens", 0, "cap on generated tokens (unset: up to the context length)")
	f.StringArray("stop", nil, "stop string (repeatable)")
	f.Bool("logprobs", false, "return log probabilities (shown with --json)")
	f.Int32("top-logprobs", 0, "alternatives per token with --logprobs")
	f.String("pipeline", "", "plugin pipeline to use")
}

func (s *samplingFlags) params() *ulanv1.SamplingParams {
	p := &ulanv1.SamplingParams{}
	f := s.f
	if f.Changed("temperature") {
		v, _ := f.GetFloat32("temperature")
		p.Temperature = &v
	}
	if f.Changed("top-p") {
		v, _ := f.GetFloat32("top-p")
		p.TopP = &v
	}
	if f.Changed("top-k") {
		v, _ := f.GetInt32("top-k")
		p.TopK = &v
	}
	if f.Changed("min-p") {
		v, _ := f.GetFloat32("min-p")
		p.MinP = &v
	}
	if f.Changed("seed") {
		v, _ := f.GetUint64("seed")
		p.Seed = &v
	}
	if f.Changed("max-tokens") {
		v, _ := f.GetInt32("max-tokens")
		p.MaxTokens = &v
	}
	p.Stop, _ = f.GetStringArray("stop")
	p.Logprobs, _ = f.GetBool("logprobs")
	p.TopLogprobs, _ = f.GetInt32("top-logprobs")
	return p
}

func (s *samplingFlags) plugins() *ulanv1.PluginSelection {
	name, _ := s.f.GetString("pipeline")
	if name == "" {
		return nil
	}
	return &ulanv1.PluginSelection{Pipeline: name}
}

func newGenerateCmd() *cobra.Command {
	var cf clientFlags
	var sf samplingFlags
	var ids string
	var addSpecial bool
	var local localFlags
	cmd := &cobra.Command{
		Use:   "generate [flags] PROMPT",
		Short: "Continue a prompt on a running server, streaming the text (or, with --model, run a model in this process)",
		Long: `Continue a prompt on a running server, streaming the text to stdout as it
arrives (--json: each response message as one line of JSON).

With --model FILE the engine runs in this process instead, on token ids:
  ulan generate --model m.gguf --prompt-ids 1,2,3 --max-tokens 16 [--greedy] [--json]
prints the generated ids (greedy decoding; sampling arrives with a later
release); --json adds the top alternatives of every step.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if local.model != "" {
				for _, name := range []string{"addr", "protocol", "timeout", "add-special-tokens"} {
					if f.Changed(name) {
						return fmt.Errorf("--%s is for calling a server; --model runs the model in this process", name)
					}
				}
				return local.run(cmd, args, ids, &sf)
			}
			for _, name := range []string{"threads", "top"} {
				if f.Changed(name) {
					return fmt.Errorf("--%s needs --model (it sets how this process runs a model; a server has its own)", name)
				}
			}
			req := &ulanv1.GenerateRequest{Sampling: sf.params(), Plugins: sf.plugins(), AddSpecialTokens: addSpecial}
			if local.greedy {
				if t := req.Sampling.Temperature; t != nil && *t != 0 {
					return fmt.Errorf("--greedy and --temperature %g disagree: greedy decoding is temperature 0", *t)
				}
				req.Sampling.Temperature = new(float32)
			}
			switch {
			case len(args) == 1 && ids != "":
				return errors.New("give a PROMPT or --prompt-ids, not both")
			case len(args) == 1:
				req.Prompt = args[0]
			case ids != "":
				parsed, err := parseIDs(ids)
				if err != nil {
					return err
				}
				req.PromptTokenIds = parsed
			default:
				return errors.New("give a PROMPT or --prompt-ids")
			}
			client, err := cf.inference()
			if err != nil {
				return err
			}
			ctx, cancel := cf.context(cmd.Context())
			defer cancel()
			stream, err := client.Generate(ctx, connect.NewRequest(req))
			if err != nil {
				return cf.explain(ctx, err)
			}
			p := newPrinter(cmd, cf.json)
			for stream.Receive() {
				m := stream.Msg()
				if err := p.event(m, m.GetStarted(), m.GetDelta(), m.GetFinished()); err != nil {
					return err
				}
			}
			return cf.explain(ctx, p.end(stream.Err()))
		},
	}
	cf.register(cmd.Flags())
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&ids, "prompt-ids", "", "prompt as comma-separated token ids instead of text")
	cmd.Flags().BoolVar(&addSpecial, "add-special-tokens", false, "add the beginning-of-sequence token to a text prompt")
	local.register(cmd.Flags())
	cmd.Flags().Lookup("max-tokens").Usage = "cap on generated tokens (unset: up to the context length; with --model: 16)"
	return cmd
}

// maxLine is the longest line chat reads from standard input as one turn.
const maxLine = 16 << 20

func newChatCmd() *cobra.Command {
	var cf clientFlags
	var sf samplingFlags
	var system, thinking string
	cmd := &cobra.Command{
		Use:   "chat [flags] [MESSAGE]",
		Short: "Chat with a running server; without MESSAGE, each line of input is a turn",
		Long: `Chat with a running server. With MESSAGE, send one user turn; without it,
each line of standard input is a user turn (blank lines are skipped) and the
conversation keeps its history until the input ends. Replies stream to
stdout; the model's reasoning, if any, goes to stderr.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, ok := thinkingModes[thinking]
			if !ok {
				return fmt.Errorf("--thinking %q: use default, off, on or max", thinking)
			}
			client, err := cf.inference()
			if err != nil {
				return err
			}
			var history []*ulanv1.Message
			if system != "" {
				history = append(history, &ulanv1.Message{Role: ulanv1.Role_ROLE_SYSTEM, Content: system})
			}
			turn := func(text string) error {
				history = append(history, &ulanv1.Message{Role: ulanv1.Role_ROLE_USER, Content: text})
				req := &ulanv1.ChatRequest{Messages: history, Thinking: mode, Sampling: sf.params(), Plugins: sf.plugins()}
				ctx, cancel := cf.context(cmd.Context())
				defer cancel()
				stream, err := client.Chat(ctx, connect.NewRequest(req))
				if err != nil {
					return cf.explain(ctx, err)
				}
				p := newPrinter(cmd, cf.json)
				for stream.Receive() {
					m := stream.Msg()
					if err := p.event(m, m.GetStarted(), m.GetDelta(), m.GetFinished()); err != nil {
						return err
					}
				}
				if err := p.end(stream.Err()); err != nil {
					return cf.explain(ctx, err)
				}
				history = append(history, p.reply())
				return nil
			}
			if len(args) == 1 {
				return turn(args[0])
			}
			done := make(chan struct{})
			defer close(done)
			lines, readErr := readLines(cmd.InOrStdin(), done)
			for {
				// A read from a terminal does not end with the context, so
				// the loop waits on both: Ctrl-C at the prompt stops chat.
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case line, ok := <-lines:
					if !ok {
						return <-readErr
					}
					if line = strings.TrimSpace(line); line != "" {
						if err := turn(line); err != nil {
							return err
						}
					}
				}
			}
		},
	}
	cf.register(cmd.Flags())
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&system, "system", "", "system message")
	cmd.Flags().StringVar(&thinking, "thinking", "default", "thinking mode: default, off, on or max")
	return cmd
}

// readLines sends r's lines, one at a time, and then closes lines and sends
// the error that ended the input (nil at its end) on errc. Once done is
// closed it sends nothing more; a read that blocks (a terminal) still runs
// until it returns.
func readLines(r io.Reader, done <-chan struct{}) (lines <-chan string, errc <-chan error) {
	lc, ec := make(chan string), make(chan error, 1)
	go func() {
		defer close(lc)
		in := bufio.NewScanner(r)
		in.Buffer(make([]byte, 64<<10), maxLine)
		for in.Scan() {
			select {
			case lc <- in.Text():
			case <-done:
				return
			}
		}
		switch err := in.Err(); {
		case errors.Is(err, bufio.ErrTooLong):
			ec <- fmt.Errorf("standard input: a line is longer than %d MiB", maxLine>>20)
		case err != nil:
			ec <- fmt.Errorf("standard input: %w", err)
		default:
			ec <- nil
		}
	}()
	return lc, ec
}

var thinkingModes = map[string]ulanv1.ThinkingMode{
	"default": ulanv1.ThinkingMode_THINKING_MODE_UNSPECIFIED,
	"off":     ulanv1.ThinkingMode_THINKING_MODE_OFF,
	"on":      ulanv1.ThinkingMode_THINKING_MODE_ON,
	"max":     ulanv1.ThinkingMode_THINKING_MODE_MAX,
}

func newTokenizeCmd() *cobra.Command {
	var cf clientFlags
	var addSpecial, parseSpecial bool
	var pipeline string
	cmd := &cobra.Command{
		Use:   "tokenize [flags] TEXT",
		Short: "Print the token ids of TEXT on a running server",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("give one TEXT to tokenize (got %d arguments; quote text with spaces)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := cf.inference()
			if err != nil {
				return err
			}
			ctx, cancel := cf.context(cmd.Context())
			defer cancel()
			res, err := client.Tokenize(ctx, connect.NewRequest(&ulanv1.TokenizeRequest{
				Text: args[0], AddSpecialTokens: addSpecial, ParseSpecialTokens: parseSpecial, Pipeline: pipeline,
			}))
			if err != nil {
				return cf.explain(ctx, err)
			}
			out := cmd.OutOrStdout()
			if cf.json {
				return printJSON(out, res.Msg)
			}
			ids := make([]string, len(res.Msg.TokenIds))
			for i, id := range res.Msg.TokenIds {
				ids[i] = strconv.FormatUint(uint64(id), 10)
			}
			_, err = fmt.Fprintln(out, strings.Join(ids, " "))
			printNotes(cmd.ErrOrStderr(), res.Msg.Annotations, "")
			return err
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&addSpecial, "add-special-tokens", false, "add the beginning-of-sequence token")
	cmd.Flags().BoolVar(&parseSpecial, "parse-special-tokens", false, "encode special-token text as special tokens")
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "plugin pipeline whose tokenizer to use")
	return cmd
}

func parseIDs(s string) ([]uint32, error) {
	var ids []uint32
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--prompt-ids: %q is not a token id", f)
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}

// printer writes a generation stream: text as it arrives (content to stdout,
// reasoning to stderr), or one JSON line per message.
type printer struct {
	out, errOut io.Writer
	json        bool
	content     strings.Builder
	reasoning   strings.Builder
	calls       []*ulanv1.ToolCall
	finished    *ulanv1.Finished
	// outOpen and errOpen are set while the content on stdout or the
	// reasoning on stderr lacks its closing newline.
	outOpen, errOpen bool
}

func newPrinter(cmd *cobra.Command, json bool) *printer {
	return &printer{out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), json: json}
}

func (p *printer) event(m proto.Message, _ *ulanv1.Started, d *ulanv1.Delta, f *ulanv1.Finished) error {
	if d != nil {
		p.content.WriteString(d.Content)
		p.reasoning.WriteString(d.Reasoning)
		for _, tc := range d.ToolCalls {
			for int(tc.Index) >= len(p.calls) {
				p.calls = append(p.calls, &ulanv1.ToolCall{})
			}
			c := p.calls[tc.Index]
			c.Id += tc.Id
			c.Name += tc.Name
			c.Arguments += tc.Arguments
		}
	}
	if f != nil {
		p.finished = f
	}
	if p.json {
		return printJSON(p.out, m)
	}
	if d != nil {
		if d.Reasoning != "" {
			fmt.Fprint(p.errOut, d.Reasoning)
			p.errOpen = !strings.HasSuffix(d.Reasoning, "\n")
		}
		if d.Content != "" {
			p.closeReasoning()
			if _, err := fmt.Fprint(p.out, d.Content); err != nil {
				return err
			}
			p.outOpen = !strings.HasSuffix(d.Content, "\n")
		}
	}
	return nil
}

// closeReasoning ends the reasoning's line on stderr, so that what follows
// on a terminal starts a line of its own.
func (p *printer) closeReasoning() {
	if p.errOpen {
		fmt.Fprintln(p.errOut)
		p.errOpen = false
	}
}

// end reports how the stream ended: a transport or server error as the
// command's error (after ending the text's line, so that the error starts
// one of its own), an error or cancelled finish as exit status 1.
func (p *printer) end(err error) error {
	if !p.json {
		p.closeReasoning()
	}
	if err != nil {
		if !p.json && p.outOpen {
			fmt.Fprintln(p.out)
		}
		return err
	}
	if !p.json {
		for _, c := range p.calls {
			fmt.Fprintf(p.out, "\n[tool call %s] %s(%s)", c.Id, c.Name, c.Arguments)
		}
		fmt.Fprintln(p.out)
	}
	f := p.finished
	if f == nil {
		return errors.New("stream ended without a finish message")
	}
	switch f.FinishReason {
	case ulanv1.FinishReason_FINISH_REASON_ERROR:
		return fmt.Errorf("generation failed: %s", f.Message)
	case ulanv1.FinishReason_FINISH_REASON_CANCELLED:
		// The server cut the text short (a Cancel call, or a drain that ran
		// out of time): what was printed is not the whole answer.
		return fmt.Errorf("generation cancelled by the server: %s", f.Message)
	case ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER:
		if !p.json {
			fmt.Fprintf(p.errOut, "ulan: %s: %s\n", finishName(f.FinishReason), f.Message)
		}
	}
	if !p.json {
		printNotes(p.errOut, f.Annotations, f.Message)
	}
	return nil
}

// printNotes writes, one a line, the annotations of a response (what the
// server's pipeline did instead of what was asked: a plugin's fallback, a
// redaction), but for one whose message was already said.
func printNotes(w io.Writer, notes []*ulanv1.Annotation, said string) {
	for _, n := range notes {
		if n.Message != said {
			fmt.Fprintf(w, "ulan: note from %s: %s\n", n.Source, n.Message)
		}
	}
}

// reply is the assistant turn the stream produced, for the chat history.
func (p *printer) reply() *ulanv1.Message {
	return &ulanv1.Message{Role: ulanv1.Role_ROLE_ASSISTANT, Content: p.content.String(), Reasoning: p.reasoning.String(), ToolCalls: p.calls}
}

func finishName(r ulanv1.FinishReason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "FINISH_REASON_"))
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
