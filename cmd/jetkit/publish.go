package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
)

// maxPublishInput bounds what publish reads from a file or stdin; the
// server's max_payload (1 MiB by default) refuses more anyway.
const maxPublishInput = 64 << 20

// newPublishCmd is `jetkit publish`: send one event, as a jetkit service
// would, and print the server's acknowledgement.
func newPublishCmd() *cobra.Command {
	var (
		url, key, eventType, id string
		headers                 []string
	)
	cmd := &cobra.Command{
		Use:   "publish SUBJECT DATA|@FILE|-",
		Short: "Publish one test event (CloudEvents envelope included) and print the server's acknowledgement",
		Long: `Publishes DATA (JSON) as a jetkit event on the topic SUBJECT, the way
Topic.Publish does: envelope headers (ce-id, ce-type, ce-source jetkit-publish,
ce-time), Nats-Msg-Id and a stored-and-acknowledged publish. SUBJECT is the
topic's subject as declared (orders.created.v1); a keyed topic takes --key,
which is appended (orders.created.v1.<key>). The event type is SUBJECT unless
--type says otherwise (for a topic declared with framework.EventType).
DATA is the JSON itself, @FILE reads it from a file, - from standard input.
Connects as the dlq command does (JETKIT_NATS_URL and JETKIT_NATS_*; --url).

  jetkit publish orders.created.v1 --key o-1 '{"order_id":"o-1"}'
  jetkit publish orders.created.v1 --key o-1 --header tenant=acme @order.json
  echo '{"order_id":"o-2"}' | jetkit publish orders.created.v1 --key o-2 -`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			if err := wire.ValidateSubject(subject); err != nil {
				return usageErrorf(cmd, "SUBJECT: %w", err)
			}
			for _, p := range []string{"$", "_INBOX.", wire.DeadLetterSubjectPrefix + "."} {
				if strings.HasPrefix(subject, p) {
					return usageErrorf(cmd, "SUBJECT %q is a system, inbox or dead-letter subject; jetkit events live on application subjects such as orders.created.v1", subject)
				}
			}
			opts, err := publishOptions(cmd, key, id, headers)
			if err != nil {
				return err
			}
			data, err := readPublishData(cmd, args[1])
			if err != nil {
				return err
			}
			var topicOpts []framework.TopicOption
			if key != "" {
				topicOpts = append(topicOpts, framework.Keyed())
			}
			if eventType != "" {
				topicOpts = append(topicOpts, framework.EventType(eventType))
			}
			topic, err := framework.NewTopic[json.RawMessage](subject, topicOpts...)
			if err != nil {
				return usageErrorf(cmd, "%w", err)
			}
			conn, _, err := connectCLI(cmd.Context(), url, "jetkit-publish")
			if err != nil {
				return err
			}
			defer conn.Close()
			ack, err := topic.Publish(cmd.Context(), conn, data, opts...)
			if err != nil {
				return err
			}
			dup := ""
			if ack.Duplicate {
				dup = " (duplicate: the stream already had this event id, not stored again)"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "published event %s (type %s) to %s: stream %s sequence %d%s\n",
				ack.EventID, topic.EventType(), ack.Subject, ack.Stream, ack.Sequence, dup)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "NATS servers, comma separated (default: JETKIT_NATS_URL or nats://127.0.0.1:4222)")
	f.StringVar(&key, "key", "", "key appended to the subject, for a keyed topic")
	f.StringVar(&eventType, "type", "", "CloudEvents type (default: SUBJECT)")
	f.StringVar(&id, "id", "", "event id (default: a new unique id); the same id twice inside the duplicates window is stored once")
	f.StringArrayVar(&headers, "header", nil, "application header `name=value` (repeatable)")
	return cmd
}

// publishOptions turns the flags into framework publish options, refusing
// what the framework would silently replace (envelope headers).
func publishOptions(cmd *cobra.Command, key, id string, headers []string) ([]framework.PublishOption, error) {
	var opts []framework.PublishOption
	if cmd.Flags().Changed("key") {
		opts = append(opts, framework.WithKey(key)) // an empty --key is refused by the framework, naming it
	}
	if id != "" {
		opts = append(opts, framework.WithEventID(id))
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, "=")
		switch lower := strings.ToLower(name); {
		case !ok || name == "":
			return nil, usageErrorf(cmd, "--header %q: write name=value", h)
		case strings.HasPrefix(lower, "ce-") || lower == "nats-msg-id" || strings.HasPrefix(lower, "nats-"):
			return nil, usageErrorf(cmd, "--header %q: envelope and NATS headers are set by jetkit; use --id and --type for the event id and type", h)
		}
		opts = append(opts, framework.WithHeader(name, value))
	}
	return opts, nil
}

// readPublishData reads DATA, @FILE or - (stdin) and checks it is JSON.
func readPublishData(cmd *cobra.Command, arg string) (json.RawMessage, error) {
	var (
		data []byte
		err  error
		from = "DATA"
	)
	switch {
	case arg == "-":
		from = "standard input"
		data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxPublishInput))
	case strings.HasPrefix(arg, "@"):
		from = arg[1:]
		var f *os.File
		if f, err = os.Open(from); err == nil {
			data, err = io.ReadAll(io.LimitReader(f, maxPublishInput))
			f.Close()
		}
	default:
		data = []byte(arg)
	}
	if err != nil {
		return nil, fmt.Errorf("read event data from %s: %w", from, err)
	}
	if !json.Valid(data) {
		return nil, usageErrorf(cmd, "event data from %s is not JSON; jetkit events are JSON, such as '{\"order_id\":\"o-1\"}'", from)
	}
	return data, nil
}
