// Package framework runs event-driven services on NATS JetStream: typed
// events published with a CloudEvents envelope, durable subscriptions that
// run handlers through middleware, and a lifecycle in which every message
// ends acked, retried with backoff, dead-lettered with a reason, or handed
// back at shutdown.
//
// # A service
//
// A Service owns one connection, the streams it declares and its
// subscriptions. LoadConfig reads the environment (PREFIX_SERVICE_NAME,
// PREFIX_NATS_URL, ...) and reports every problem at once; New connects.
//
//	cfg, err := framework.LoadConfig("ORDER")
//	svc, err := framework.New(ctx, cfg)
//	svc.Use(middleware.Defaults(middleware.Options{})...)
//	_, err = svc.EnsureStream(ctx, framework.StreamSpec{Name: "ORDERS", Subjects: []string{"orders.>"}})
//	_, err = framework.Subscribe(ctx, svc, OrderCreated, "inventory", reserve, nil)
//	err = svc.Run(ctx) // until ctx ends, then a graceful shutdown
//
// # Topics and events
//
// A Topic is a typed event on a subject, <domain>.<event>.v<N>, declared
// once with MustNewTopic (or NewTopic for subjects computed at run time).
// A Keyed topic carries a key on every event, as the last subject token
// (orders.created.v1.<order id>). Publish encodes the event with the
// topic's codec (JSON by default, Bytes for raw payloads), wraps it in the
// CloudEvents binary-mode headers with the event id as Nats-Msg-Id (the
// stream stores an id once), and waits for the stream to store it,
// resending across leader elections. PublishAsync does not wait.
//
// # The delivery lifecycle
//
// A handler returns nil (the message is acked), an error (it is retried
// after a backoff, in this process first if the retry middleware is used,
// then by redelivery), or Permanent(err) (it is dead-lettered at once, as
// is a message that cannot be decoded or has failed MaxDeliver
// deliveries). A dead letter is a copy in the dead-letter stream with
// headers saying why; package framework/dlq and the jetkit CLI list and
// replay them. Handlers that run long are kept alive with InProgress. At
// shutdown nothing is lost: buffered messages are handed back at once,
// running handlers get until the shutdown budget ends.
//
// # Subscriptions
//
// SubscribeOptions set the ack mode (AckModeAsync, the default, or
// AckModeSync, where a message counts as done only once the server
// confirms its ack), Concurrency (handlers running at once; 1 is strict
// stream order), OrderedByKey (one message at a time per key, keys in
// parallel) and Partitioned (each key owned by one instance at a time).
// How many messages are pulled ahead of the handlers adapts to the
// measured handler time and payload size unless Prefetch fixes it.
// Instances of one service share a durable name and split the work;
// services that each need every event use different names.
//
// # Testing
//
// Package framework/frameworktest runs a handler without a server;
// package testenv starts an embedded NATS server (or a three-node cluster)
// for integration tests.
package framework
