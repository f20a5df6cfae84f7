package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	f.StringVar(&c.addr, "addr", config.Default().Server.Listen, "server address, HOST:PORT or a URL (http://, https://)")
	f.StringVar(&c.protocol, "protocol", "connect", "wire protocol: connect, grpc or grpcweb")
	f.BoolVar(&c.json, "json", false, "print each response message as one line of JSON (token ids included)")
	f.DurationVar(&c.timeout, "timeout", 0, "give up after this long (0: no limit)")
}

// baseURL turns --addr into a URL; a bare HOST:PORT means plain HTTP.
func (c *clientFlags) baseURL() string {
	if strings.HasPrefix(c.addr, "http://") || strings.HasPrefix(c.addr, "https://") {
		return strings.TrimSuffix(c.addr, "/")
	}
	return "http://" + c.addr
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

func (c *clientFlags) inference() (ulanv1connect.InferenceServiceClient, error) {
	hc, opts, err := c.options()
	if err != nil {
		return nil, err
	}
	return ulanv1connect.NewInferenceServiceClient(hc, c.baseURL(), opts...), nil
}

func (c *clientFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
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
	f.Int32("max-tokens", 0, "cap on generated tokens")
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
		Long: `Continue a prompt on a running server, streaming the text as it arrives.

With --model FILE the engine runs in this process instead, on token ids:
  ulan generate --model m.gguf --prompt-ids 1,2,3 --max-tokens 16 [--greedy] [--json]
prints the generated ids (greedy decoding; sampling arrives with a later
release); --json adds the top alternatives of every step.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if local.model != "" {
				return local.run(cmd, args, ids, &sf)
			}
			req := &ulanv1.GenerateRequest{Sampling: sf.params(), Plugins: sf.plugins(), AddSpecialTokens: addSpecial}
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
				return err
			}
			p := newPrinter(cmd, cf.json)
			for stream.Receive() {
				m := stream.Msg()
				if err := p.event(m, m.GetStarted(), m.GetDelta(), m.GetFinished()); err != nil {
					return err
				}
			}
			return p.end(stream.Err())
		},
	}
	cf.register(cmd.Flags())
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&ids, "prompt-ids", "", "prompt as comma-separated token ids instead of text")
	cmd.Flags().BoolVar(&addSpecial, "add-special-tokens", false, "add the beginning-of-sequence token to a text prompt")
	local.register(cmd.Flags())
	return cmd
}

func newChatCmd() *cobra.Command {
	var cf clientFlags
	var sf samplingFlags
	var system, thinking string
	cmd := &cobra.Command{
		Use:   "chat [flags] [MESSAGE]",
		Short: "Chat with a running server; without MESSAGE, each line of input is a turn",
		Args:  cobra.MaximumNArgs(1),
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
					return err
				}
				p := newPrinter(cmd, cf.json)
				for stream.Receive() {
					m := stream.Msg()
					if err := p.event(m, m.GetStarted(), m.GetDelta(), m.GetFinished()); err != nil {
						return err
					}
				}
				if err := p.end(stream.Err()); err != nil {
					return err
				}
				history = append(history, p.reply())
				return nil
			}
			if len(args) == 1 {
				return turn(args[0])
			}
			in := bufio.NewScanner(cmd.InOrStdin())
			in.Buffer(make([]byte, 64<<10), 16<<20)
			for in.Scan() {
				if line := strings.TrimSpace(in.Text()); line != "" {
					if err := turn(line); err != nil {
						return err
					}
				}
			}
			return in.Err()
		},
	}
	cf.register(cmd.Flags())
	sf.register(cmd.Flags())
	cmd.Flags().StringVar(&system, "system", "", "system message")
	cmd.Flags().StringVar(&thinking, "thinking", "default", "thinking mode: default, off, on or max")
	return cmd
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
		Args:  cobra.ExactArgs(1),
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
				return err
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
		}
		if _, err := fmt.Fprint(p.out, d.Content); err != nil {
			return err
		}
	}
	return nil
}

// end reports how the stream ended: a transport or server error as the
// command's error, an error finish as exit status 1.
func (p *printer) end(err error) error {
	if err != nil {
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
	case ulanv1.FinishReason_FINISH_REASON_CANCELLED, ulanv1.FinishReason_FINISH_REASON_CONTENT_FILTER:
		if !p.json {
			fmt.Fprintf(p.errOut, "ulan: %s: %s\n", finishName(f.FinishReason), f.Message)
		}
	}
	return nil
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
