package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/testenv"
)

type demoTick struct {
	N  int       `json:"n"`
	At time.Time `json:"at"`
}

func newDevCmd() *cobra.Command {
	var dataDir string
	var fresh bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a demo on an embedded NATS server: publish and consume through jetkit until Ctrl-C",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), dataDir, fresh)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", ".jetkit/data", "directory for the embedded server's JetStream store")
	cmd.Flags().BoolVar(&fresh, "fresh", false, "delete the data directory first")
	return cmd
}

func runDemo(ctx context.Context, dataDir string, fresh bool) error {
	if fresh {
		if err := os.RemoveAll(dataDir); err != nil {
			return fmt.Errorf("--fresh: remove %s: %w", dataDir, err)
		}
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	srv, err := testenv.Run(testenv.Options{StoreDir: dataDir})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	fmt.Printf("embedded NATS with JetStream at %s (data in %s)\n", srv.URL(), dataDir)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := srv.Config("demo")
	svc, err := framework.New(ctx, cfg, framework.WithLogger(log))
	if err != nil {
		return err
	}
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "DEMO", Subjects: []string{"demo.>"}}); err != nil {
		return err
	}
	ticks := framework.NewTopic[demoTick]("demo.tick.v1")
	_, err = framework.Subscribe(svc, ticks, "demo-printer", func(ctx context.Context, ev demoTick, m *framework.Message) error {
		fmt.Printf("consumed tick %d (event %s, stream seq %d, %s after publish)\n",
			ev.N, m.Envelope.ID, m.StreamSeq, time.Since(ev.At).Round(time.Microsecond))
		return nil
	}, framework.DeliverNew())
	if err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for n := 1; ; n++ {
			ack, err := ticks.Publish(ctx, svc, demoTick{N: n, At: time.Now()})
			if err != nil {
				if ctx.Err() == nil {
					fmt.Printf("publish tick %d failed: %v\n", n, err)
				}
			} else {
				fmt.Printf("published tick %d -> %s seq %d\n", n, ack.Stream, ack.Sequence)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	fmt.Println("publishing one event a second; Ctrl-C to stop")
	err = svc.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
