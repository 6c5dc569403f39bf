// Command jetkit is the jetkit CLI: run the sample system (dev), generate
// services (new), watch consumer capacity (capacity), benchmark (bench),
// manage dead letters (dlq) and publish a test event (publish).
//
// It exits 0 on success, 1 when a command fails and 2 on a usage error
// (unknown command or flag, wrong arguments, an invalid flag value).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// Errors carry subjects, headers and payload excerpts from the server:
	// escape them line by line.
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(stderr, "jetkit:", clean(line))
	}
	if isUsage(err) {
		return 2
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "jetkit",
		Short:         "jetkit: event-driven Go services on NATS JetStream",
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.AddCommand(
		newDevCmd(),
		newNewCmd(),
		newCapacityCmd(),
		newBenchCmd(),
		newDLQCmd(),
		newPublishCmd(),
	)
	markUsageErrors(root)
	return root
}
