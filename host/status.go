package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/auth"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/metrics"
	"github.com/ulan-ai/ulan/host/plugin"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// configRuntime is the configuration runtime behind PluginService: the configuration
// and the plugin generations. With a reload source (WithReload) it re-reads the
// configuration on request, builds the next generation beside the current one and swaps
// it in; without one the server runs the generation it started with and Reload answers
// Unimplemented.
type configRuntime struct {
	live    *generation.Live
	deps    generation.Deps // for builds and ValidateConfig's dry runs
	src     *config.Sources // where a reload reads the configuration; nil: no reload
	log     *slog.Logger
	onSwap  func(config.Config, *generation.Generation)
	gate    *auth.Gate // its keys and origins swapped to the new configuration's by a reload
	metrics *metrics.Metrics

	// reloading admits one reload at a time.
	reloading sync.Mutex
	mu        sync.Mutex // guards cfg, since, last
	cfg       config.Config
	since     time.Time // when the current generation began serving
	last      *ulanv1.ReloadResult
	// dryRun admits one dry run at a time: each loads every plugin of the file it
	// checks, warm pools included.
	dryRun chan struct{}
}

var _ api.Plugins = (*configRuntime)(nil)

func newConfigRuntime(cfg config.Config, live *generation.Live, deps generation.Deps, log *slog.Logger) *configRuntime {
	c := &configRuntime{cfg: cfg, live: live, deps: deps, log: log, dryRun: make(chan struct{}, 1)}
	g := live.Current()
	c.since = time.Now()
	c.last = &ulanv1.ReloadResult{Ok: true, Trigger: "startup", At: timestamppb.New(c.since)}
	if g != nil {
		c.since = g.BuiltAt()
		c.last.Generation, c.last.At, c.last.Took = g.Number(), timestamppb.New(g.BuiltAt()), durationpb.New(g.Took())
	}
	return c
}

// List returns the current generation's plugins and pipelines.
func (c *configRuntime) List(context.Context) (*ulanv1.ListPluginsResponse, error) {
	g := c.live.Current()
	if g == nil {
		return &ulanv1.ListPluginsResponse{}, nil
	}
	res := &ulanv1.ListPluginsResponse{Generation: g.Number()}
	for _, p := range g.Plugins() {
		res.Plugins = append(res.Plugins, &ulanv1.Plugin{
			Id:            p.ID,
			Kind:          pluginKind(p.Kind()),
			Name:          p.Manifest.Name,
			Version:       p.Manifest.Version,
			AbiVersion:    uint32(max(p.Manifest.ABI, 0)),
			Sha256:        p.SHA256,
			FailurePolicy: failurePolicy(p.Policy),
			PoolSize:      uint32(max(p.PoolSize, 0)),
		})
	}
	def := g.Default()
	for _, pl := range g.Pipelines() {
		out := &ulanv1.Pipeline{Name: pl.Name, Default: pl == def}
		if pl.Tokenizer != nil {
			out.Tokenizer = pl.Tokenizer.ID
		}
		if pl.Sampler != nil {
			out.Sampler = pl.Sampler.ID
		}
		for _, h := range pl.Hooks {
			out.Hooks = append(out.Hooks, h.ID)
		}
		res.Pipelines = append(res.Pipelines, out)
	}
	return res, nil
}

// Status reports the current generation, the last reload's result and how many retired
// generations still finish requests.
func (c *configRuntime) Status(context.Context) (*ulanv1.GetStatusResponse, error) {
	res := &ulanv1.GetStatusResponse{DrainingGenerations: uint32(len(c.live.Retired()))}
	if g := c.live.Current(); g != nil {
		res.Generation = g.Number()
	}
	c.mu.Lock()
	res.GenerationSince = timestamppb.New(c.since)
	res.LastReload = c.last
	c.mu.Unlock()
	return res, nil
}

// Reload re-reads the configuration and swaps in its generation (trigger "rpc").
func (c *configRuntime) Reload(ctx context.Context) (*ulanv1.ReloadResult, error) {
	if c.src == nil {
		return nil, fmt.Errorf("live reload: %w: this server runs the plugin generation it started with; restart it to apply a changed configuration (ValidateConfig checks one first)", api.ErrNotImplemented)
	}
	return c.reload(ctx, "rpc"), nil
}

// reload re-reads the configuration from its sources and, when it is valid, changes
// only what may change live and builds, builds the next generation (carrying unchanged
// plugins over) and swaps it in. Whatever fails leaves the current generation serving;
// the result says why, and becomes GetStatus's last_reload.
func (c *configRuntime) reload(ctx context.Context, trigger string) *ulanv1.ReloadResult {
	c.reloading.Lock()
	defer c.reloading.Unlock()
	start := time.Now()
	cur := c.live.Current()
	res := &ulanv1.ReloadResult{Trigger: trigger}
	if cur != nil {
		res.Generation = cur.Number()
	}
	outcome := metrics.ReloadInvalid
	finish := func() *ulanv1.ReloadResult {
		res.At, res.Took = timestamppb.Now(), durationpb.New(time.Since(start))
		c.mu.Lock()
		c.last = res
		c.mu.Unlock()
		c.metrics.Reload(outcome)
		c.metrics.SetGeneration(res.Generation)
		if res.Ok {
			c.log.Info("configuration reloaded", "trigger", trigger, "generation", res.Generation, "took", time.Since(start))
		} else {
			c.log.Warn("configuration not reloaded; the current generation keeps serving", "trigger", trigger,
				"generation", res.Generation, "problems", problemText(res.Problems), "restart_required", res.RestartRequired)
		}
		return res
	}
	next, err := config.Load(*c.src)
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		res.Problems = protoProblems(problems)
		return finish()
	case err != nil:
		res.Problems = []*ulanv1.ConfigProblem{{Message: err.Error()}}
		return finish()
	}
	c.mu.Lock()
	running := c.cfg
	c.mu.Unlock()
	if keys := config.RestartRequired(running, next); len(keys) > 0 {
		// Nothing is half-applied: the plugins and pipelines of this file wait too.
		outcome = metrics.ReloadRestartNeeded
		res.RestartRequired = keys
		for _, k := range keys {
			res.Problems = append(res.Problems, &ulanv1.ConfigProblem{Key: k,
				Message: "changed, and takes effect only after a restart; nothing in this configuration was applied"})
		}
		return finish()
	}
	// The keys first: a reload that cannot apply them applies nothing.
	keys, err := authKeys(next)
	if err != nil {
		res.Problems = []*ulanv1.ConfigProblem{{Key: "server.auth", Message: err.Error()}}
		return finish()
	}
	outcome = metrics.ReloadFailed
	deps := c.deps
	deps.Previous = cur
	deps.Number = max(res.Generation, 1) + 1
	g, err := generation.Build(ctx, next, deps)
	switch {
	case errors.As(err, &problems):
		res.Problems = protoProblems(problems)
		return finish()
	case err != nil:
		res.Problems = []*ulanv1.ConfigProblem{{Message: err.Error()}}
		return finish()
	}
	// Keys and origins go in together (one pointer), and before the generation: a key
	// the new configuration removes is refused from the moment it is built, and a call
	// a new key lets in a moment early runs on the old generation, which still serves.
	if c.gate != nil {
		c.gate.Swap(keys, next.Server.CORS.AllowedOrigins, next.Server.CORS.MaxAge)
	}
	c.live.Swap(g)
	c.mu.Lock()
	c.cfg, c.since = next, time.Now()
	c.mu.Unlock()
	res.Ok, res.Generation, outcome = true, g.Number(), metrics.ReloadOK
	if c.onSwap != nil {
		c.onSwap(next, g)
	}
	return finish()
}

// problemText joins problems for a log line.
func problemText(ps []*ulanv1.ConfigProblem) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.GetMessage()
		if p.GetKey() != "" {
			parts[i] = p.GetKey() + ": " + parts[i]
		}
	}
	return strings.Join(parts, "; ")
}

// Validate parses a configuration file's text and, when it parses, builds its plugins
// and pipelines as start-up would (a dry run, released at once). It returns every
// problem and the changed keys that need a restart.
func (c *configRuntime) Validate(ctx context.Context, yaml []byte) (*ulanv1.ValidateConfigResponse, error) {
	// Judged as a reload would judge the file: with the environment and flags the server
	// was started with on top, so that a key they set does not read as a change that needs
	// a restart.
	var next config.Config
	var err error
	if c.src != nil {
		next, err = config.LoadText(*c.src, yaml)
	} else {
		next, err = config.Parse(yaml)
	}
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		return &ulanv1.ValidateConfigResponse{Problems: protoProblems(problems)}, nil
	case err != nil:
		return &ulanv1.ValidateConfigResponse{Problems: []*ulanv1.ConfigProblem{{Message: err.Error()}}}, nil
	}
	c.mu.Lock()
	running := c.cfg
	c.mu.Unlock()
	res := &ulanv1.ValidateConfigResponse{RestartRequired: config.RestartRequired(running, next)}
	select {
	case c.dryRun <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another configuration check to finish: %w", context.Cause(ctx))
	}
	defer func() { <-c.dryRun }()
	deps := c.deps
	deps.Previous = c.live.Current()
	deps.Number = 2
	if deps.Previous != nil {
		deps.Number = deps.Previous.Number() + 1
	}
	err = generation.DryRun(ctx, next, deps)
	switch {
	case errors.As(err, &problems):
		res.Problems = protoProblems(problems)
	case err != nil:
		return nil, fmt.Errorf("checking the plugins: %w", err)
	default:
		res.Valid = true
	}
	return res, nil
}

func protoProblems(ps config.Problems) []*ulanv1.ConfigProblem {
	out := make([]*ulanv1.ConfigProblem, len(ps))
	for i, p := range ps {
		out[i] = &ulanv1.ConfigProblem{Key: p.Key, Message: p.Message}
	}
	return out
}

func pluginKind(k plugin.Kind) ulanv1.PluginKind {
	switch k {
	case plugin.KindTokenizer:
		return ulanv1.PluginKind_PLUGIN_KIND_TOKENIZER
	case plugin.KindSampler:
		return ulanv1.PluginKind_PLUGIN_KIND_SAMPLER
	case plugin.KindHook:
		return ulanv1.PluginKind_PLUGIN_KIND_HOOK
	}
	return ulanv1.PluginKind_PLUGIN_KIND_UNSPECIFIED
}

func failurePolicy(p generation.Policy) ulanv1.FailurePolicy {
	switch p {
	case generation.FailClosed:
		return ulanv1.FailurePolicy_FAILURE_POLICY_FAIL_CLOSED
	case generation.FailOpen:
		return ulanv1.FailurePolicy_FAILURE_POLICY_FAIL_OPEN
	case generation.Fallback:
		return ulanv1.FailurePolicy_FAILURE_POLICY_FALLBACK
	}
	return ulanv1.FailurePolicy_FAILURE_POLICY_UNSPECIFIED
}
