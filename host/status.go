package host

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/config"
	"github.com/ulan-ai/ulan/host/generation"
	"github.com/ulan-ai/ulan/host/plugin"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// configRuntime is the configuration runtime behind PluginService: the configuration
// and the plugin generation the server started with, which serve until it stops. Live
// reload, which will build and swap in the next generation, is a later issue; until
// then Reload answers Unimplemented.
type configRuntime struct {
	cfg  config.Config
	gen  *generation.Generation
	deps generation.Deps // for ValidateConfig's dry runs
	// dryRun admits one dry run at a time: each loads every plugin of the file it
	// checks, warm pools included.
	dryRun chan struct{}
}

var _ api.Plugins = (*configRuntime)(nil)

func newConfigRuntime(cfg config.Config, gen *generation.Generation, deps generation.Deps) *configRuntime {
	return &configRuntime{cfg: cfg, gen: gen, deps: deps, dryRun: make(chan struct{}, 1)}
}

// List returns the start-up generation's plugins and pipelines.
func (c *configRuntime) List(context.Context) (*ulanv1.ListPluginsResponse, error) {
	res := &ulanv1.ListPluginsResponse{Generation: c.gen.Number()}
	for _, p := range c.gen.Plugins() {
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
	def := c.gen.Default()
	for _, pl := range c.gen.Pipelines() {
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

// Status reports the start-up generation and its build as the last reload.
func (c *configRuntime) Status(context.Context) (*ulanv1.GetStatusResponse, error) {
	at := timestamppb.New(c.gen.BuiltAt())
	return &ulanv1.GetStatusResponse{
		Generation:      c.gen.Number(),
		GenerationSince: at,
		LastReload: &ulanv1.ReloadResult{
			Ok:         true,
			Generation: c.gen.Number(),
			Trigger:    "startup",
			At:         at,
			Took:       durationpb.New(c.gen.Took()),
		},
	}, nil
}

// Reload answers Unimplemented: live reload is a later issue.
func (c *configRuntime) Reload(context.Context) (*ulanv1.ReloadResult, error) {
	return nil, fmt.Errorf("live reload: %w: the server runs the plugin generation it started with; restart it to apply a changed configuration (ValidateConfig checks one first)", api.ErrNotImplemented)
}

// Validate parses a configuration file's text and, when it parses, builds its plugins
// and pipelines as start-up would (a dry run, released at once). It returns every
// problem and the changed keys that need a restart.
func (c *configRuntime) Validate(ctx context.Context, yaml []byte) (*ulanv1.ValidateConfigResponse, error) {
	next, err := config.Parse(yaml)
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		return &ulanv1.ValidateConfigResponse{Problems: protoProblems(problems)}, nil
	case err != nil:
		return &ulanv1.ValidateConfigResponse{Problems: []*ulanv1.ConfigProblem{{Message: err.Error()}}}, nil
	}
	res := &ulanv1.ValidateConfigResponse{RestartRequired: config.RestartRequired(c.cfg, next)}
	select {
	case c.dryRun <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another configuration check to finish: %w", context.Cause(ctx))
	}
	defer func() { <-c.dryRun }()
	deps := c.deps
	deps.Number = c.gen.Number() + 1
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
