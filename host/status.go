package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ulan-ai/ulan/host/api"
	"github.com/ulan-ai/ulan/host/config"

	ulanv1 "github.com/ulan-ai/ulan/proto/gen/ulan/v1"
)

// startupConfig is the configuration runtime of a server without a plugin
// runtime: generation 1 is the configuration it started with, it has no
// plugins or pipelines, and nothing can change without a restart. The plugin
// runtime and hot reload replace it (issues #4 and #7).
type startupConfig struct {
	cfg   config.Config
	since time.Time
}

func newStartupConfig(cfg config.Config, since time.Time) *startupConfig {
	return &startupConfig{cfg: cfg, since: since}
}

const startupGeneration = 1

func (c *startupConfig) List(context.Context) (*ulanv1.ListPluginsResponse, error) {
	return &ulanv1.ListPluginsResponse{Generation: startupGeneration}, nil
}

func (c *startupConfig) Status(context.Context) (*ulanv1.GetStatusResponse, error) {
	at := timestamppb.New(c.since)
	return &ulanv1.GetStatusResponse{
		Generation:      startupGeneration,
		GenerationSince: at,
		LastReload: &ulanv1.ReloadResult{
			Ok:         true,
			Generation: startupGeneration,
			Trigger:    "startup",
			At:         at,
			Took:       durationpb.New(0),
		},
	}, nil
}

func (c *startupConfig) Reload(context.Context) (*ulanv1.ReloadResult, error) {
	return nil, fmt.Errorf("live reload: %w: no configuration key can change live yet; restart the server to apply changes", api.ErrNotImplemented)
}

func (c *startupConfig) Validate(_ context.Context, yaml []byte) (*ulanv1.ValidateConfigResponse, error) {
	next, err := config.Parse(yaml)
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		res := &ulanv1.ValidateConfigResponse{}
		for _, p := range problems {
			res.Problems = append(res.Problems, &ulanv1.ConfigProblem{Key: p.Key, Message: p.Message})
		}
		return res, nil
	case err != nil:
		return &ulanv1.ValidateConfigResponse{Problems: []*ulanv1.ConfigProblem{{Message: err.Error()}}}, nil
	}
	return &ulanv1.ValidateConfigResponse{Valid: true, RestartRequired: config.RestartRequired(c.cfg, next)}, nil
}
