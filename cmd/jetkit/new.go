package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/internal/scaffolding"
)

// newNewCmd is `jetkit new service|event`: generate a service, or add an
// event to one, and check that the result builds, passes its tests and runs.
func newNewCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "new",
		Short: "Generate a service (new service) or add an event to one (new event); the output is verified",
	}
	cmd.AddCommand(newServiceCmd(), newEventCmd())
	return cmd
}

func newServiceCmd() *cobra.Command {
	var spec scaffolding.Spec
	var noVerify bool
	cmd := &cobra.Command{
		Use:   "service NAME --module PATH [--dir DIR] [--consumes SUBJECT[:keyed]]... [--publishes SUBJECT[:keyed]]...",
		Short: "Generate a service, then check it: go mod tidy, vet, build, test, and a start on an embedded NATS server",
		Long: `Generate a service. Subjects are lower-case <domain>.<event>.v<N>; append
:keyed to one published with a key, one subject per key (orders.created.v1.<key>,
as the sample order service publishes): its topic is framework.Keyed(). The
service owns and declares the stream of each domain it publishes into; the
streams of events it only consumes belong to their producers, which declare
them (tests and -embedded-nats declare them in their place).`,
		Example: `  jetkit new service payments --module github.com/acme/payments \
      --consumes orders.created.v1:keyed --publishes payments.settled.v1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			out := cmd.OutOrStdout()
			res, err := scaffolding.Generate(spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "wrote %d files to %s\n", len(res.Files), res.Dir)
			if res.Jetkit.ReplaceDir != "" {
				fmt.Fprintf(out, "jetkit: replaced with the local checkout %s\n", res.Jetkit.ReplaceDir)
			} else {
				fmt.Fprintf(out, "jetkit: %s %s\n", scaffolding.JetkitModule, res.Jetkit.Version)
			}
			if noVerify {
				fmt.Fprintln(out, "not verified (--no-verify); run go mod tidy && make test there")
				return nil
			}
			fmt.Fprintln(out, "verifying:")
			if err := scaffolding.Verify(cmd.Context(), res.Dir, scaffolding.VerifyOptions{Progress: out}); err != nil {
				return err
			}
			fmt.Fprintf(out, "%s builds, passes its tests and runs. Next:\n  cd %s && make run\n", spec.Name, res.Dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Module, "module", "", "Go module path of the service, e.g. github.com/acme/payments (required)")
	f.StringVar(&spec.Dir, "dir", "", "directory to write (default ./NAME); must be empty unless --force")
	f.StringArrayVar(&spec.Consumes, "consumes", nil, "subject the service handles, e.g. orders.created.v1:keyed (:keyed when it is published with a key; repeatable)")
	f.StringArrayVar(&spec.Publishes, "publishes", nil, "subject the service publishes, e.g. payments.settled.v1 (append :keyed to publish it with a key; repeatable)")
	f.BoolVar(&spec.Force, "force", false, "write into a non-empty directory, overwriting generated files")
	f.BoolVar(&noVerify, "no-verify", false, "skip go mod tidy, vet, build, test and the start check")
	f.StringVar(&spec.JetkitReplace, "jetkit-replace", "", "local jetkit checkout to use via a go.mod replace, which holds its absolute path (default: no replace; require the released version of this jetkit binary)")
	_ = cmd.MarkFlagRequired("module")
	return cmd
}

func newEventCmd() *cobra.Command {
	var consume, noVerify bool
	cmd := &cobra.Command{
		Use:   "event SUBJECT[:keyed] [--consume]",
		Short: "Add a typed event and its topic to the generated service in the current directory, then verify it",
		Long: `Add a typed event (internal/events/<event>.go), its round-trip test and, for
a new domain, its stream. With --consume also a handler, its test and its
subscription. SUBJECT:keyed declares an event published with a key
(SUBJECT.<key>). Without --consume the service publishes the event and owns
its domain's stream. Only new files are written and lines are added only between
jetkit:begin and jetkit:end markers; your code elsewhere is not touched.`,
		Example: "  jetkit new event payments.refunded.v1\n  jetkit new event orders.cancelled.v1:keyed --consume",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			res, err := scaffolding.AddEvent(wd, args[0], consume)
			if err != nil {
				return err
			}
			for _, f := range res.Files {
				fmt.Fprintf(out, "wrote %s\n", f)
			}
			for _, n := range res.Notes {
				fmt.Fprintf(out, "note: %s\n", n)
			}
			if noVerify {
				return nil
			}
			fmt.Fprintln(out, "verifying:")
			return scaffolding.Verify(cmd.Context(), res.Dir, scaffolding.VerifyOptions{Progress: out, SkipRun: !consume})
		},
	}
	cmd.Flags().BoolVar(&consume, "consume", false, "also generate a handler, its test and its subscription")
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "skip go mod tidy, vet, build and test")
	return cmd
}
