// Command ulan is ulan's one binary: the server (serve), the clients that
// call it (generate, chat, tokenize), the model tools (model, bench), the
// plugin tools (plugin) and version.
//
//	ulan serve                     # serve on 127.0.0.1:8080
//	ulan generate "Once upon"      # stream a completion from a running server
//	ulan chat                      # talk to it, one line per turn
//	ulan tokenize "Hello"          # token ids
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx; commands stop at their next check. The
	// second one gets the default behaviour back and ends the process, so
	// that a command stuck in work it cannot interrupt still ends on Ctrl-C.
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitInterrupted is the exit status of a command stopped by SIGINT or
// SIGTERM, as shells report a process killed by SIGINT.
const exitInterrupted = 130

// exitError carries a process exit status out of a command that has already
// said what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes one command line and returns the process exit status. Every
// error is printed as one line, "ulan: …"; Connect errors read "code: message".
// A command that ctx's end (a signal) stopped says "interrupted" and exits 130.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled):
		fmt.Fprintln(stderr, "ulan: interrupted")
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "ulan: %v\n", err)
	return 1
}

// noArgs is cobra.NoArgs with an error that says what is wrong: cobra's
// reads "unknown command" even where the command has no subcommands.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ulan",
		Short: "An inference server for DeepSeek-class Mixture-of-Experts models",
		Long: `ulan serves DeepSeek-class Mixture-of-Experts models over Connect, gRPC and
gRPC-web on one port; tokenization, sampling and post-processing run as
sandboxed WebAssembly plugins.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServeCmd(), newVersionCmd(), newGenerateCmd(), newChatCmd(), newTokenizeCmd(), newModelCmd(), newBenchCmd(), newPluginCmd())
	return root
}
