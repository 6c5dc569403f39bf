package telemetry

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Metric names. Where the OpenTelemetry messaging conventions define a
// metric jetkit uses its name; the lifecycle outcomes they do not cover are
// under jetkit.*.
const (
	MetricConsumed       = "messaging.client.consumed.messages"  // deliveries taken by a worker
	MetricProcessed      = "jetkit.messages.processed"           // handled and acked
	MetricFailed         = "jetkit.messages.failed"              // handler or decode error
	MetricRetried        = "jetkit.messages.retried"             // redelivery scheduled with backoff
	MetricDeadLettered   = "jetkit.messages.dead_lettered"       // copied to the dead-letter stream
	MetricRedelivered    = "jetkit.messages.redelivered"         // deliveries with NumDelivered > 1
	MetricHandedBack     = "jetkit.messages.handed_back"         // returned unfinished at shutdown
	MetricAckFailed      = "jetkit.messages.ack_failed"          // ack not sent or not confirmed
	MetricTimedOut       = "jetkit.handlers.timed_out"           // handler ran past MaxHandlerTime
	MetricOverran        = "jetkit.handlers.overran"             // processing took longer than AckWait
	MetricProcessTime    = "messaging.process.duration"          // handler chain + settle, seconds
	MetricInFlight       = "jetkit.handlers.in_flight"           // deliveries being processed now
	MetricConcurrency    = "jetkit.handlers.limit"               // the subscription's concurrency limit
	MetricPublishTime    = "messaging.client.operation.duration" // publish round trip, seconds
	MetricPublished      = "messaging.client.sent.messages"      // events the server stored (or queued, async)
	MetricPublishFailed  = "jetkit.publish.failed"               // publishes that returned an error
	MetricPartitionOwned = "jetkit.partition.owned"              // 1 per partition this instance consumes now
	instrumentationScope = "github.com/jetkit/jetkit/framework/telemetry"
)

// DurationBuckets are the explicit histogram bounds, in seconds, of the
// process and publish durations: 100 µs to 30 s.
var DurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// Attribute keys jetkit adds beyond the messaging conventions.
const (
	AttrStream        = attribute.Key("jetkit.stream")          // stream name
	AttrStreamSeq     = attribute.Key("jetkit.stream.sequence") // message's stream sequence
	AttrDeliveryCount = attribute.Key("jetkit.delivery.count")  // deliveries so far, this one included
	AttrMaxDeliver    = attribute.Key("jetkit.max_deliver")     // delivery limit
	AttrOutcome       = attribute.Key("jetkit.outcome")         // acked, retried, dead_lettered, ...
	AttrRetryDelay    = attribute.Key("jetkit.retry.delay_ms")  // redelivery delay
	AttrDLQReason     = attribute.Key("jetkit.dead_letter.reason")
	AttrEventType     = attribute.Key("cloudevents.event_type") // CloudEvents type
	AttrPartition     = attribute.Key("jetkit.partition")       // partition of a partitioned consumer group
)

var systemNATS = semconv.MessagingSystemKey.String("nats")

type instruments struct {
	consumed, processed, failed, retried, deadLettered, redelivered, handedBack, ackFailed metric.Int64Counter
	timedOut, overran                                                                      metric.Int64Counter
	processTime                                                                            metric.Float64Histogram
	inFlight, partitionOwned                                                               metric.Int64UpDownCounter
	limit                                                                                  metric.Int64Gauge
	publishTime                                                                            metric.Float64Histogram
	published, publishFailed                                                               metric.Int64Counter
}

func newInstruments(m metric.Meter) (*instruments, error) {
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{message}"))
		errs = append(errs, err)
		return c
	}
	in := &instruments{
		consumed:      counter(MetricConsumed, "Deliveries a subscription took for processing."),
		processed:     counter(MetricProcessed, "Deliveries handled successfully and acknowledged."),
		failed:        counter(MetricFailed, "Deliveries whose handler (or decoding) returned an error."),
		retried:       counter(MetricRetried, "Deliveries scheduled for redelivery with backoff after a failure."),
		deadLettered:  counter(MetricDeadLettered, "Messages copied to the dead-letter stream and terminated."),
		redelivered:   counter(MetricRedelivered, "Deliveries of a message delivered before."),
		handedBack:    counter(MetricHandedBack, "Deliveries returned unfinished at shutdown."),
		ackFailed:     counter(MetricAckFailed, "Handled deliveries whose ack failed (they are redelivered)."),
		timedOut:      counter(MetricTimedOut, "Deliveries whose handler ran past MaxHandlerTime (cancelled, or abandoned if it ignored its context)."),
		overran:       counter(MetricOverran, "Deliveries processed for longer than the consumer's AckWait (kept alive by InProgress heartbeats)."),
		published:     counter(MetricPublished, "Events published (stored by the server; queued for async publishes)."),
		publishFailed: counter(MetricPublishFailed, "Publishes that failed."),
	}
	var err error
	in.processTime, err = m.Float64Histogram(MetricProcessTime, metric.WithUnit("s"),
		metric.WithDescription("Time from a worker taking a delivery to its settlement (handler chain, ack or retry or dead-letter)."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	errs = append(errs, err)
	in.publishTime, err = m.Float64Histogram(MetricPublishTime, metric.WithUnit("s"),
		metric.WithDescription("Duration of publishes, until the server stored the event (async: until queued)."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...))
	errs = append(errs, err)
	in.inFlight, err = m.Int64UpDownCounter(MetricInFlight, metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries being processed now; compare with "+MetricConcurrency+"."))
	errs = append(errs, err)
	in.partitionOwned, err = m.Int64UpDownCounter(MetricPartitionOwned, metric.WithUnit("{partition}"),
		metric.WithDescription("1 for each partition of a partitioned consumer group (labelled by the group's durable and the partition) this instance consumes now; summed over instances, 1 per partition when the group is healthy."))
	errs = append(errs, err)
	in.limit, err = m.Int64Gauge(MetricConcurrency, metric.WithUnit("{message}"),
		metric.WithDescription("Most deliveries a subscription processes at once (its concurrency)."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: create metric instruments: %w", err)
	}
	return in, nil
}
