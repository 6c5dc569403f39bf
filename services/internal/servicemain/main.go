package servicemain

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main is a command's main function: it calls run with a context that ends
// on SIGINT or SIGTERM and, if run fails, prints "<name>: <error>" to
// stderr and exits with status 1.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
