package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/host"
	"github.com/ulan-ai/ulan/host/config"
)

// serveFlags maps serve's flags to configuration keys; a flag the user sets
// overrides the file and the environment.
var serveFlags = map[string]string{
	"listen":        "server.listen",
	"drain-timeout": "server.drain_timeout",
	"log-level":     "log.level",
	"log-format":    "log.format",
}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the server. Configuration comes from built-in defaults, then the YAML
file given with --config, then ULAN_* environment variables (ULAN_SERVER_LISTEN
for server.listen), then flags; later sources win.

SIGINT or SIGTERM starts a graceful drain (server.drain_timeout); a second
signal stops the server at once.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	configFile := f.String("config", "", "YAML configuration file")
	def := config.Default()
	f.String("listen", def.Server.Listen, "address to serve on, HOST:PORT (server.listen)")
	f.Duration("drain-timeout", def.Server.DrainTimeout, "how long streams may finish after a shutdown signal (server.drain_timeout)")
	f.String("log-level", def.Log.Level, "debug, info, warn or error (log.level)")
	f.String("log-format", def.Log.Format, "text or json (log.format)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(config.Sources{
			File:     *configFile,
			Env:      os.Environ(),
			Flags:    f,
			FlagKeys: serveFlags,
		})
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		log := host.NewLogger(cfg.Log, cmd.ErrOrStderr())
		return serve(cmd.Context(), cfg, log)
	}
	return cmd
}

// serve runs the server until the first SIGINT/SIGTERM, drains, and stops at
// once on a second signal.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	srv, err := host.New(cfg, host.WithLogger(log))
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	// serve needs to see the second signal too, so it listens itself and
	// detaches from main's signal context, which ends at the first.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, drain := context.WithCancel(context.WithoutCancel(ctx))
	defer drain()
	go onSignals(sigs, log, drain, func() { _ = srv.Close() })
	return srv.Serve(ctx, ln)
}

// onSignals drains on the first signal and forces a stop on the second.
func onSignals(sigs <-chan os.Signal, log *slog.Logger, drain, force func()) {
	sig, ok := <-sigs
	if !ok {
		return
	}
	log.Info("signal received; draining (send again to stop at once)", "signal", sig.String())
	drain()
	sig, ok = <-sigs
	if !ok {
		return
	}
	log.Warn("second signal received; stopping at once", "signal", sig.String())
	force()
}
