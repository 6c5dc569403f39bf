// Command jetkit is the jetkit CLI: run the sample system (dev), generate
// services (new), watch consumer capacity (capacity), benchmark (bench)
// and manage dead letters (dlq).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "jetkit:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "jetkit",
		Short:         "jetkit: event-driven Go services on NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newDevCmd(),
		newNewCmd(),
		newCapacityCmd(),
		newBenchCmd(),
		newDLQCmd(),
	)
	return root
}
