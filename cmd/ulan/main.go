// Command ulan is ulan's one binary: the server (serve) and the clients that
// call it (generate, chat, tokenize), plus version.
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

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries a process exit status out of a command that has already
// said what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes one command line and returns the process exit status. Every
// error is printed as one line, "ulan: …"; Connect errors read "code: message".
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
	}
	fmt.Fprintf(stderr, "ulan: %v\n", err)
	return 1
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
