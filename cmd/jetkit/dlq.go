package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/framework/dlq"
	"github.com/jetkit/jetkit/internal/svcenv"
)

// dlqOpts are the flags shared by the dlq subcommands.
type dlqOpts struct {
	url, stream string
	filter      dlq.Filter
	all         bool
	asJSON      bool
}

// newDLQCmd is `jetkit dlq`: list, show, replay and purge dead letters.
func newDLQCmd() *cobra.Command {
	var o dlqOpts
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge dead-lettered messages",
		Long: `Works on the dead-letter stream (JETKIT_DEAD_LETTER_STREAM, default DEADLETTER)
of the server in JETKIT_NATS_URL, with the JETKIT_NATS_* credentials and TLS;
--url overrides the servers. Entries are addressed by their sequence in the
dead-letter stream, as list prints it.

  jetkit dlq list --consumer billing --reason max-deliver
  jetkit dlq show 42
  jetkit dlq replay --consumer billing --dry-run
  jetkit dlq replay --consumer billing
  jetkit dlq purge --reason decode

replay re-publishes each entry to its original subject as a new message
(fresh delivery count, same event id) and deletes it from the dead-letter
stream; a rerun finds nothing to replay, and a replay interrupted between
publishing and deleting is de-duplicated by the target stream (Nats-Msg-Id
jetkit-replay.<stream>.<seq>) inside its duplicates window. Every consumer
of the subject receives the replay: consumers that already handled the event
skip it if they use middleware.Idempotency.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "url", "", "NATS servers, comma separated (default: JETKIT_NATS_URL or nats://127.0.0.1:4222)")
	pf.StringVar(&o.stream, "dead-letter-stream", "", "dead-letter stream (default: JETKIT_DEAD_LETTER_STREAM or DEADLETTER)")
	cmd.AddCommand(newDLQListCmd(&o), newDLQShowCmd(&o), newDLQReplayCmd(&o), newDLQPurgeCmd(&o))
	return cmd
}

func addFilterFlags(cmd *cobra.Command, o *dlqOpts) {
	f := cmd.Flags()
	f.StringVar(&o.filter.Stream, "stream", "", "only entries consumed from this stream")
	f.StringVar(&o.filter.Consumer, "consumer", "", "only entries of this consumer")
	f.StringVar(&o.filter.Reason, "reason", "", "only this reason: decode, permanent or max-deliver")
	f.Uint64Var(&o.filter.FromSeq, "from", 0, "first dead-letter sequence (inclusive)")
	f.Uint64Var(&o.filter.ToSeq, "to", 0, "last dead-letter sequence (inclusive)")
}

func newDLQListCmd(o *dlqOpts) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: sequence, time, reason, consumer, original subject, deliveries, error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), o, func(ctx context.Context, s *dlq.Store) error {
				entries, err := s.List(ctx, o.filter, limit)
				if err != nil {
					return err
				}
				if o.asJSON {
					return writeJSON(cmd.OutOrStdout(), listView(entries))
				}
				return printList(cmd.OutOrStdout(), s.Name(), entries)
			})
		},
	}
	addFilterFlags(cmd, o)
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many entries (0: all)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON (without payloads; use show for one entry in full)")
	return cmd
}

func newDLQShowCmd(o *dlqOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one dead letter in full: reason, error, headers and payload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || seq == 0 {
				return fmt.Errorf("dlq show: %q is not a dead-letter sequence (a positive number, as dlq list prints)", args[0])
			}
			return withStore(cmd.Context(), o, func(ctx context.Context, s *dlq.Store) error {
				e, err := s.Get(ctx, seq)
				if err != nil {
					return err
				}
				if o.asJSON {
					return writeJSON(cmd.OutOrStdout(), e)
				}
				return printEntry(cmd.OutOrStdout(), e)
			})
		},
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON (payload base64-encoded)")
	return cmd
}

func newDLQReplayCmd(o *dlqOpts) *cobra.Command {
	var ro dlq.ReplayOptions
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-publish dead letters to their original subject and remove them from the dead-letter stream",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFilter("replay", o); err != nil {
				return err
			}
			return withStore(cmd.Context(), o, func(ctx context.Context, s *dlq.Store) error {
				res, err := s.Replay(ctx, o.filter, ro)
				out := cmd.OutOrStdout()
				for _, r := range res.Replayed {
					switch {
					case ro.DryRun:
						fmt.Fprintf(out, "would replay %d -> %s (event %s)\n", r.Entry.Seq, r.Entry.Subject, r.Entry.EventID)
					case r.Duplicate:
						fmt.Fprintf(out, "replayed %d -> %s: already there as %s/%d (duplicate dropped)\n", r.Entry.Seq, r.Entry.Subject, r.Stream, r.Seq)
					default:
						fmt.Fprintf(out, "replayed %d -> %s as %s/%d (event %s)\n", r.Entry.Seq, r.Entry.Subject, r.Stream, r.Seq, r.Entry.EventID)
					}
				}
				verb := "replayed"
				if ro.DryRun {
					verb = "would replay"
				}
				fmt.Fprintf(out, "%s %d dead letter(s) from %s; %d failed\n", verb, len(res.Replayed), s.Name(), len(res.Failed))
				return errors.Join(err, res.Err())
			})
		},
	}
	addFilterFlags(cmd, o)
	cmd.Flags().BoolVar(&o.all, "all", false, "replay every dead letter (required when no filter is given)")
	cmd.Flags().BoolVar(&ro.DryRun, "dry-run", false, "print what would be replayed; change nothing")
	cmd.Flags().BoolVar(&ro.Keep, "keep", false, "keep replayed entries in the dead-letter stream")
	return cmd
}

func newDLQPurgeCmd(o *dlqOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete dead letters for good",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFilter("purge", o); err != nil {
				return err
			}
			return withStore(cmd.Context(), o, func(ctx context.Context, s *dlq.Store) error {
				n, err := s.Purge(ctx, o.filter)
				fmt.Fprintf(cmd.OutOrStdout(), "purged %d dead letter(s) from %s\n", n, s.Name())
				return err
			})
		},
	}
	addFilterFlags(cmd, o)
	cmd.Flags().BoolVar(&o.all, "all", false, "purge every dead letter (required when no filter is given)")
	return cmd
}

// needFilter refuses to act on every entry unless --all says so.
func needFilter(verb string, o *dlqOpts) error {
	if o.filter == (dlq.Filter{}) && !o.all {
		return fmt.Errorf("dlq %s: give a filter (--stream, --consumer, --reason, --from, --to) or --all to %s every dead letter", verb, verb)
	}
	return nil
}

// withStore connects as the environment says (with --url and
// --dead-letter-stream overriding it) and opens the dead-letter stream.
func withStore(ctx context.Context, o *dlqOpts, fn func(context.Context, *dlq.Store) error) error {
	restore := svcenv.DefaultServiceName(framework.DefaultEnvPrefix, "jetkit-dlq")
	cfg, err := framework.LoadConfig("")
	restore()
	if err != nil {
		return err
	}
	if o.url != "" {
		cfg.URLs = strings.Split(o.url, ",")
	}
	if o.stream != "" {
		cfg.DeadLetterStream = o.stream
	}
	cfg.ServiceName = "jetkit-dlq" // an operator's tool, whatever service the environment describes
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := framework.Connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	s, err := dlq.Open(ctx, conn.JS, cfg.DeadLetterStream)
	if err != nil {
		return err
	}
	if err := fn(ctx, s); err != nil {
		return err
	}
	// Deletes and publishes are confirmed requests; flush anything else.
	return conn.NC.FlushTimeout(cfg.RequestTimeout)
}

// listRow is an entry without its payload and headers, for list --json.
type listRow struct {
	Seq          uint64    `json:"seq"`
	DeadLettered time.Time `json:"dead_lettered"`
	Reason       string    `json:"reason"`
	Error        string    `json:"error"`
	Subject      string    `json:"subject"`
	Stream       string    `json:"stream"`
	Consumer     string    `json:"consumer"`
	StreamSeq    uint64    `json:"stream_seq"`
	Delivered    uint64    `json:"delivered"`
	EventID      string    `json:"event_id,omitempty"`
	EventType    string    `json:"event_type,omitempty"`
}

func listView(entries []dlq.Entry) []listRow {
	rows := make([]listRow, len(entries))
	for i, e := range entries {
		rows[i] = listRow{Seq: e.Seq, DeadLettered: e.DeadLettered, Reason: e.Reason, Error: e.Error, Subject: e.Subject,
			Stream: e.Stream, Consumer: e.Consumer, StreamSeq: e.StreamSeq, Delivered: e.Delivered, EventID: e.EventID, EventType: e.EventType}
	}
	return rows
}

func printList(w io.Writer, stream string, entries []dlq.Entry) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintf(w, "no dead letters in %s match\n", stream)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED\tREASON\tSTREAM/CONSUMER\tSUBJECT\tSTREAM-SEQ\tDELIVERED\tERROR")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s\t%s\t%d\t%d\t%s\n", e.Seq, e.DeadLettered.Local().Format(time.DateTime), e.Reason,
			e.Stream, e.Consumer, e.Subject, e.StreamSeq, e.Delivered, shorten(e.Error, 80))
	}
	return tw.Flush()
}

func printEntry(w io.Writer, e dlq.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"sequence", strconv.FormatUint(e.Seq, 10)},
		{"reason", e.Reason},
		{"error", e.Error},
		{"original subject", e.Subject},
		{"stream / consumer", e.Stream + " / " + e.Consumer},
		{"stream sequence", strconv.FormatUint(e.StreamSeq, 10)},
		{"deliveries", strconv.FormatUint(e.Delivered, 10)},
		{"dead-lettered", e.DeadLettered.Format(time.RFC3339Nano)},
		{"event id", e.EventID},
		{"event type", e.EventType},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "headers:")
	keys := make([]string, 0, len(e.Header))
	for k := range e.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range e.Header[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	if utf8.Valid(e.Data) {
		_, err := fmt.Fprintf(w, "payload (%d bytes):\n%s\n", len(e.Data), e.Data)
		return err
	}
	_, err := fmt.Fprintf(w, "payload (%d bytes, not UTF-8; use --json for base64)\n", len(e.Data))
	return err
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
