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

replay re-publishes each entry's original message, read back from its stream
(or, once the stream no longer has it, the dead letter's copy), to its
original subject as a new message (fresh delivery count, same event id) and
deletes it from the dead-letter
stream; a rerun does not find it again, and a replay interrupted between
publishing and deleting is de-duplicated by the target stream (Nats-Msg-Id
jetkit-replay.<stream>.<seq>) inside its duplicates window. A run works on
the entries present when it starts (one that fails again returns as a new
entry, for the next run), so --dry-run lists what the run replays. Every
consumer of the subject receives the replay: consumers that already handled
the event skip it if they use middleware.Idempotency.

replay refuses, prints and keeps an entry that does not hold together: not
on the dead-letter subject of the stream and consumer it names; whose
original subject that stream does not store, that consumer does not read,
or that is a $, _INBOX or dead-letter subject; whose stream sequence holds
another subject or never existed; or whose copy was cut to fit and whose
original is gone. Output escapes control characters (show --raw prints the
bytes).`,
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
	f.StringVar(&o.filter.Consumer, "consumer", "", "only entries of this consumer (a Partitioned group's durable: of its partitions too)")
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
			if err := checkFilter(cmd, o); err != nil {
				return err
			}
			if limit < 0 {
				return usageErrorf(cmd, "--limit %d: give a number of entries, or 0 for all", limit)
			}
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
	var raw bool
	cmd := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one dead letter in full: reason, error, headers and payload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || seq == 0 {
				return usageErrorf(cmd, "%q is not a dead-letter sequence (a positive number, as dlq list prints)", args[0])
			}
			return withStore(cmd.Context(), o, func(ctx context.Context, s *dlq.Store) error {
				e, err := s.Get(ctx, seq)
				if err != nil {
					return err
				}
				if o.asJSON {
					return writeJSON(cmd.OutOrStdout(), e)
				}
				return printEntry(cmd.OutOrStdout(), e, raw)
			})
		},
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON (payload base64-encoded)")
	cmd.Flags().BoolVar(&raw, "raw", false, "print headers and payload as they are, control characters included (default: escaped, as \\x1b)")
	return cmd
}

func newDLQReplayCmd(o *dlqOpts) *cobra.Command {
	var ro dlq.ReplayOptions
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-publish dead letters to their original subject and remove them from the dead-letter stream",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFilter(cmd, "replay", o); err != nil {
				return err
			}
			return withStore(cmd.Context(), o, func(ctx context.Context, s *dlq.Store) error {
				res, err := s.Replay(ctx, o.filter, ro)
				return printReplay(cmd.OutOrStdout(), s.Name(), ro.DryRun, res, err)
			})
		},
	}
	addFilterFlags(cmd, o)
	cmd.Flags().BoolVar(&o.all, "all", false, "replay every dead letter (required when no filter is given)")
	cmd.Flags().BoolVar(&ro.DryRun, "dry-run", false, "print what would be replayed; change nothing")
	cmd.Flags().BoolVar(&ro.Keep, "keep", false, "keep replayed entries in the dead-letter stream")
	return cmd
}

// printReplay prints what a replay did (or would do), entry by entry, with
// every refusal and failure, and returns an error if there was any.
func printReplay(out io.Writer, stream string, dryRun bool, res dlq.ReplayResult, err error) error {
	for _, r := range res.Replayed {
		subject, id := clean(r.Entry.Subject), word(clean(r.Entry.EventID))
		from := ""
		if r.FromCopy {
			from = fmt.Sprintf(", from the dead letter's copy: the original is gone from %s", clean(r.Entry.Stream))
		}
		switch {
		case dryRun:
			fmt.Fprintf(out, "would replay %d -> %s (event %s%s)\n", r.Entry.Seq, subject, id, from)
		case r.Duplicate:
			fmt.Fprintf(out, "replayed %d -> %s: already there as %s/%d (duplicate dropped)\n", r.Entry.Seq, subject, r.Stream, r.Seq)
		default:
			fmt.Fprintf(out, "replayed %d -> %s as %s/%d (event %s%s)\n", r.Entry.Seq, subject, r.Stream, r.Seq, id, from)
		}
	}
	refused := 0
	for _, f := range res.Failed {
		verb := "failed"
		if errors.Is(f.Err, dlq.ErrRefused) {
			verb = "refused"
			refused++
		}
		fmt.Fprintf(out, "%s %d -> %s: %s\n", verb, f.Entry.Seq, clean(f.Entry.Subject), clean(f.Err.Error()))
	}
	verb := "replayed"
	if dryRun {
		verb = "would replay"
	}
	failed := len(res.Failed) - refused
	fmt.Fprintf(out, "%s %d dead letter(s) from %s; %d refused, %d failed\n", verb, len(res.Replayed), stream, refused, failed)
	if len(res.Failed) > 0 {
		err = errors.Join(err, fmt.Errorf("dlq replay: %d dead letter(s) refused and %d failed, listed above; they stay in %s (dlq show SEQ)", refused, failed, stream))
	}
	return err
}

func newDLQPurgeCmd(o *dlqOpts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete dead letters for good",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFilter(cmd, "purge", o); err != nil {
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

// needFilter refuses to act on every entry unless --all says so, and
// checks the filter.
func needFilter(cmd *cobra.Command, verb string, o *dlqOpts) error {
	if o.filter == (dlq.Filter{}) && !o.all {
		return usageErrorf(cmd, "give a filter (--stream, --consumer, --reason, --from, --to) or --all to %s every dead letter", verb)
	}
	return checkFilter(cmd, o)
}

// checkFilter checks the filter flags before connecting: a mistyped
// reason is an error, not an empty result.
func checkFilter(cmd *cobra.Command, o *dlqOpts) error {
	if err := o.filter.Validate(); err != nil {
		return usageErrorf(cmd, "%w", err)
	}
	return nil
}

// withStore connects as the environment says (with --url and
// --dead-letter-stream overriding it) and opens the dead-letter stream.
func withStore(ctx context.Context, o *dlqOpts, fn func(context.Context, *dlq.Store) error) error {
	conn, cfg, err := connectCLI(ctx, o.url, "jetkit-dlq")
	if err != nil {
		return err
	}
	defer conn.Close()
	if o.stream != "" {
		cfg.DeadLetterStream = o.stream
	}
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

// connectCLI connects as the environment says (JETKIT_NATS_* and the
// rest of framework.LoadConfig), to url instead of JETKIT_NATS_URL if it
// is set, with the given connection name.
func connectCLI(ctx context.Context, url, name string) (*framework.Conn, framework.Config, error) {
	cfg := framework.DefaultConfig()
	cfg.ServiceName = name
	cfg, err := cfg.FromEnv("")
	if err != nil {
		return nil, cfg, err
	}
	if url != "" {
		cfg.URLs = strings.Split(url, ",")
	}
	cfg.ServiceName = name // an operator's tool, whatever service the environment describes
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := framework.Connect(ctx, cfg, log)
	return conn, cfg, err
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
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", e.Seq, when(e.DeadLettered, time.DateTime), word(clean(e.Reason)),
			word(clean(e.Stream)), word(clean(e.Consumer)), word(clean(e.Subject)), count(e.StreamSeq), count(e.Delivered), word(shorten(clean(e.Error), 80)))
	}
	return tw.Flush()
}

// printEntry prints one entry for a terminal. Everything in it comes from
// whoever wrote the dead letter, so every text is escaped (clean) unless
// raw asks for the bytes as they are.
func printEntry(w io.Writer, e dlq.Entry, raw bool) error {
	line, block := clean, cleanBlock
	if raw {
		line = func(s string) string { return s }
		block = line
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"sequence", strconv.FormatUint(e.Seq, 10)},
		{"reason", word(line(e.Reason))},
		{"error", word(line(e.Error))},
		{"original subject", word(line(e.Subject))},
		{"stream / consumer", word(line(e.Stream)) + " / " + word(line(e.Consumer))},
		{"stream sequence", count(e.StreamSeq)},
		{"deliveries", count(e.Delivered)},
		{"dead-lettered", when(e.DeadLettered, time.RFC3339Nano)},
		{"event id", word(line(e.EventID))},
		{"event type", word(line(e.EventType))},
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
			fmt.Fprintf(w, "  %s: %s\n", line(k), line(v))
		}
	}
	switch {
	case raw:
		fmt.Fprintf(w, "payload (%d bytes):\n", len(e.Data))
		if _, err := w.Write(e.Data); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w)
		return err
	case utf8.Valid(e.Data):
		_, err := fmt.Fprintf(w, "payload (%d bytes):\n%s\n", len(e.Data), block(string(e.Data)))
		return err
	}
	_, err := fmt.Fprintf(w, "payload (%d bytes, not UTF-8; use --json for base64 or --raw for the bytes)\n", len(e.Data))
	return err
}

// word, count and when print a field the dead letter lacks (a header
// missing or unparsable) as "unknown", not as an empty, 0 or year-1 value.
func word(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func count(n uint64) string {
	if n == 0 {
		return "unknown"
	}
	return strconv.FormatUint(n, 10)
}

func when(t time.Time, layout string) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Local().Format(layout)
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(jsonForTerminal(b), '\n'))
	return err
}
