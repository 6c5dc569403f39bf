package servicemain

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// healthcheckTimeout bounds the -healthcheck probe.
const healthcheckTimeout = 3 * time.Second

// Main is a command's main function: it calls run with a context that ends
// on SIGINT or SIGTERM and, if run fails, prints "<name>: <error>" to
// stderr and exits with status 1.
//
// With the flag -healthcheck it calls check instead (bounded by 3 s):
// the container health check of an image that has no shell or wget, e.g.
// ["CMD", "/order", "-healthcheck"]. It exits 0 when check returns nil
// and 1 otherwise.
func Main(name string, run, check func(ctx context.Context) error) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	healthcheck := fs.Bool("healthcheck", false, "probe the running service's GET /readyz and exit 0 when it is ready, 1 otherwise (container health checks)")
	_ = fs.Parse(os.Args[1:]) // ExitOnError: exits 2 with the usage
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q; the service is configured by environment variables (see -h)\n", name, fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if *healthcheck {
		hctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
		err = check(hctx)
		cancel()
	} else {
		err = run(ctx)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
