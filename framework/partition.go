package framework

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
	"github.com/nats-io/nuid"
)

// Partitioned consumer groups. The instances of a service that subscribe
// Partitioned with one durable name share the partitions of a partitioned
// stream (StreamSpec.Partitions): each partition is consumed by exactly one
// instance at a time, with OrderedByKey inside it.
//
//   - Ownership is enforced by the server: partition p has its own durable
//     consumer <durable>-p<p> with a priority group and the pinned-client
//     policy, so only the pinned pull receives messages.
//   - Balance comes from membership: every instance refreshes a key in the
//     KV bucket jetkit_partitions (expiring after memberTTL) and computes,
//     from the sorted live members, the same assignment of partitions
//     (balanced rendezvous hashing: few partitions move when one member
//     comes or goes). An instance consumes only its partitions; one it
//     loses is stopped gracefully (held messages handed back in order)
//     and unpinned, so the next owner is pinned at once.
//   - A crashed instance's pin expires after the consumer's PinnedTTL,
//     which is longer than AckWait: when the next owner is pinned, what the
//     crashed one had not acked is already due for redelivery, and the
//     server redelivers it before newer messages.

const (
	partitionBucket = "jetkit_partitions"
	partitionGroup  = "jetkit"
	memberBeat      = time.Second
	memberTTL       = 4 * time.Second
)

// errStillPinned: a partition's previous owner is still pinned.
var errStillPinned = errors.New("partition still pinned by its previous owner")

// pinnedTTL is the PinnedTTL of a partition consumer: past AckWait, and
// past the interval of an idle pull's requests (which renew the pin).
func pinnedTTL(ackWait time.Duration) time.Duration {
	return max(ackWait, consumePullExpiry) + 2*consumeHeartbeat
}

// pinConsumer makes want a pinned priority-group consumer for a partition.
func pinConsumer(want *jetstream.ConsumerConfig, o subOptions) {
	if o.pinnedTTL == 0 {
		return
	}
	want.PriorityGroups = []string{partitionGroup}
	want.PriorityPolicy = jetstream.PriorityPolicyPinned
	want.PinnedTTL = o.pinnedTTL
}

// pullOptions are the extra Consume options of s.
func (s *Subscription) pullOptions() []jetstream.PullConsumeOpt {
	if s.opts.pinnedTTL == 0 {
		return nil
	}
	return []jetstream.PullConsumeOpt{jetstream.PullPriorityGroup(partitionGroup)}
}

// group is the partitioned consumer group behind a Partitioned
// Subscription.
type group struct {
	svc     *Service
	log     *slog.Logger
	stream  jetstream.Stream
	subject string // the topic's subject or the filter, for labels
	base    string // the keyed subjects less the key: <domain>.<event>.v<N>, wildcards allowed
	durable string
	count   int
	handler Handler
	opts    subOptions
	kv      jetstream.KeyValue
	prefix  string // member keys: prefix + member id
	id      string

	mu    sync.Mutex
	owned map[int]*Subscription
	// releasing are the owned partitions being handed over: no longer
	// reported by Partitions, so that two instances never both report one.
	releasing map[int]bool
	retired   SubscriptionStats // counts of partitions no longer owned
	lastPut   time.Time

	quit chan struct{}
	done chan struct{}
}

// partitionBase is what a Partitioned subscription's partition filters
// are built on: the subject of a keyed topic (orders.created.v1), or a
// filter with the key as its last token (orders.*.v1.*, every event of a
// key in one subscription) less that token. A partitioned stream's keyed
// subjects have four tokens, the partition inserted before the key, so
// the base has three, none of them ">".
func partitionBase(subject string) (string, error) {
	base := subject
	if strings.ContainsAny(subject, "*>") {
		var ok bool
		if base, ok = strings.CutSuffix(subject, ".*"); !ok || strings.Contains(base, ">") {
			return "", fmt.Errorf("a Partitioned subscription needs a keyed topic (framework.Subscribe with a topic declared Keyed) or a filter whose last token is the key, like orders.*.v1.*; %q is neither", subject)
		}
	}
	if n := strings.Count(base, ".") + 1; n != 3 {
		return "", fmt.Errorf("a Partitioned subscription needs keyed subjects of four tokens (<domain>.<event>.v<N>.<key>), as a partitioned stream stores them with the partition before the key; %q has keys at token %d", subject, n+1)
	}
	return base, nil
}

// startPartitioned starts the group of a Partitioned subscription.
func (svc *Service) startPartitioned(ctx context.Context, streamName, subject, durable string, h Handler, o subOptions) (*Subscription, error) {
	what := fmt.Sprintf("subscribe %s as %q", subject, durable)
	base, err := partitionBase(subject)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st, err := retryTransient(ctx, svc.conn, "stream "+streamName, func(ctx context.Context) (jetstream.Stream, error) {
		return svc.conn.JS.Stream(ctx, streamName)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: look up stream %s: %w", what, streamName, err)
	}
	n := streamPartitions(st.CachedInfo().Config)
	if n == 0 {
		return nil, fmt.Errorf("%s: Partitioned needs a partitioned stream, and %s is not: declare it with StreamSpec.Partitions", what, streamName)
	}
	kv, err := retryTransient(ctx, svc.conn, "bucket "+partitionBucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return svc.conn.bindKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: partitionBucket, Description: "jetkit partitioned consumer group members",
			TTL: memberTTL, Storage: jetstream.MemoryStorage, Replicas: svc.cfg.Replicas, History: 1,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: membership bucket %s: %w", what, partitionBucket, err)
	}
	o.pinnedTTL = pinnedTTL(o.ackWait)
	g := &group{
		svc: svc, stream: st, subject: subject, base: base, durable: durable, count: n, handler: h, opts: o, kv: kv,
		prefix: wire.KVKeyToken(streamName) + "." + wire.KVKeyToken(durable) + ".", id: nuid.Next(),
		owned: map[int]*Subscription{}, releasing: map[int]bool{}, quit: make(chan struct{}), done: make(chan struct{}),
	}
	g.log = svc.log.With("stream", streamName, "consumer", durable)
	s := &Subscription{conn: svc.conn, stream: streamName, durable: durable, subject: subject,
		filters: []string{base + ".*.*"}, opts: o, handler: h, group: g, stopDone: make(chan struct{}),
		log: svc.log.With("stream", streamName, "consumer", durable)}
	g.reconcile() // join now: the first partitions start before Subscribe returns
	go g.run()
	return s, nil
}

func (g *group) run() {
	defer close(g.done)
	t := time.NewTicker(memberBeat)
	defer t.Stop()
	for {
		select {
		case <-g.quit:
			return
		case <-t.C:
			g.reconcile()
		}
	}
}

// reconcile refreshes this member, reads the live members and starts and
// stops partitions to match the assignment.
func (g *group) reconcile() {
	ctx, cancel := context.WithTimeout(context.Background(), g.svc.cfg.RequestTimeout)
	defer cancel()
	members, err := g.members(ctx)
	var mine map[int]bool
	switch {
	case err == nil:
		g.lastPut = time.Now()
		mine = assignPartitions(members, g.count)[g.id]
	case time.Since(g.lastPut) < memberTTL:
		g.log.Warn("partition membership not refreshed; keeping the partitions owned", "error", err)
		return
	default: // our key may have expired: others may own our partitions now
		g.log.Warn("partition membership lost; releasing every partition", "error", err)
	}
	g.mu.Lock()
	var lose []int
	for p := range g.owned {
		if !mine[p] {
			lose = append(lose, p)
		}
	}
	g.mu.Unlock()
	g.release(lose, g.svc.cfg.ShutdownTimeout)
	for p := range mine {
		g.mu.Lock()
		_, have := g.owned[p]
		g.mu.Unlock()
		if have || g.stopped() {
			continue
		}
		s, err := g.startPartition(ctx, p)
		if errors.Is(err, errStillPinned) {
			continue // the next beat tries again
		}
		if err != nil {
			g.log.Warn("starting a partition failed; retrying", "partition", p, "error", err)
			continue
		}
		g.mu.Lock()
		g.owned[p] = s
		g.mu.Unlock()
	}
}

func (g *group) stopped() bool {
	select {
	case <-g.quit:
		return true
	default:
		return false
	}
}

// members refreshes this member's key and lists the live members.
func (g *group) members(ctx context.Context) ([]string, error) {
	if _, err := g.kv.Put(ctx, g.prefix+g.id, []byte(g.id)); err != nil {
		return nil, fmt.Errorf("refresh member key: %w", err)
	}
	l, err := g.kv.ListKeysFiltered(ctx, g.prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	var members []string
	for k := range l.Keys() {
		members = append(members, strings.TrimPrefix(k, g.prefix))
	}
	if !slices.Contains(members, g.id) {
		members = append(members, g.id)
	}
	return members, nil
}

// assignPartitions gives each of count partitions to one member: the
// member ranking highest for it (rendezvous hashing) among those with
// fewer than ceil(count/members) partitions. Every member computes the
// same assignment from the same member set.
func assignPartitions(members []string, count int) map[string]map[int]bool {
	members = slices.Sorted(slices.Values(members))
	out := make(map[string]map[int]bool, len(members))
	if len(members) == 0 {
		return out
	}
	limit := (count + len(members) - 1) / len(members)
	for p := range count {
		ranked := slices.Clone(members)
		slices.SortStableFunc(ranked, func(a, b string) int {
			ha, hb := rendezvous(a, p), rendezvous(b, p)
			switch {
			case ha > hb:
				return -1
			case ha < hb:
				return 1
			}
			return 0
		})
		for _, m := range ranked {
			if len(out[m]) < limit {
				if out[m] == nil {
					out[m] = map[int]bool{}
				}
				out[m][p] = true
				break
			}
		}
	}
	return out
}

func rendezvous(member string, p int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", member, p)
	return h.Sum64()
}

// startPartition creates (or updates) partition p's consumer and consumes it.
func (g *group) startPartition(ctx context.Context, p int) (*Subscription, error) {
	o := g.opts
	o.partitioned = false
	filters := []string{fmt.Sprintf("%s.%d.*", g.base, p)}
	durable := wire.PartitionConsumer(g.durable, p)
	name := g.stream.CachedInfo().Config.Name
	cons, err := ensureConsumer(ctx, g.svc.conn, name, durable, filters, o)
	if err != nil {
		return nil, err
	}
	// The previous owner is still pinned: it is handing back what it held,
	// or it crashed and its pin has not expired. Pulling now would make the
	// server try the handed-back messages on this pull, fail (the pin is
	// not ours) and requeue them behind later ones: wait until it is
	// unpinned.
	for _, pg := range cons.CachedInfo().PriorityGroups {
		if pg.PinnedClientID != "" {
			return nil, errStillPinned
		}
	}
	s := &Subscription{conn: g.svc.conn, stream: name, durable: durable, subject: g.subject, filters: filters, opts: o,
		handler: g.handler, consumer: cons, stopDone: make(chan struct{}), partGroup: g.durable, partition: p,
		log: g.svc.log.With("stream", name, "consumer", durable, "partition", p)}
	if n := cons.CachedInfo().NumAckPending; n > 0 { // left by the previous owner
		pendingNow := func(ctx context.Context) (int, error) {
			info, err := cons.Info(ctx)
			if err != nil {
				return 0, err
			}
			return info.NumAckPending, nil
		}
		s.reorder = newReorderWindow(n, reorderWait(o.ackWait), o.ackWait/3, pendingNow, func(ms []jetstream.Msg) {
			p := &pull{retired: make(chan struct{})} // never retired: ordered pulls are not resized
			for _, m := range ms {                   // the window timed out: deliver what it held
				s.deliverOrdered(p, m)
			}
		})
	}
	s.tuner.maxMsg = g.svc.conn.NC.MaxPayload() // the pull's byte cap (pull_limits.go)
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// reorderWait bounds a partition's reorder window: past AckWait, every
// message the previous owner held is due, with a margin for the server's
// redelivery timer.
func reorderWait(ackWait time.Duration) time.Duration { return ackWait + max(ackWait/4, time.Second) }

// release stops the partitions ps within budget, handing back what they
// hold in order, and unpins them so that their next owner is pinned now.
func (g *group) release(ps []int, budget time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		g.mu.Lock()
		s := g.owned[p]
		g.releasing[p] = true
		g.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			s.stop(ctx)
			cancel()
			uctx, ucancel := context.WithTimeout(context.Background(), g.svc.cfg.RequestTimeout)
			if err := g.stream.UnpinConsumer(uctx, s.durable, partitionGroup); err != nil {
				g.log.Warn("unpinning a released partition failed; its next owner waits for the pin to expire", "partition", p, "error", err)
			}
			ucancel()
			g.mu.Lock()
			delete(g.owned, p)
			delete(g.releasing, p)
			g.retired = addStats(g.retired, s.Stats())
			g.mu.Unlock()
		}()
	}
	wg.Wait()
}

// stop leaves the group: every partition is released and the member key
// deleted, so the others take over at once.
func (g *group) stop(ctx context.Context) {
	close(g.quit)
	<-g.done
	g.mu.Lock()
	var all []int
	for p := range g.owned {
		all = append(all, p)
	}
	g.mu.Unlock()
	budget := time.Until(deadlineOr(ctx, time.Now().Add(g.svc.cfg.ShutdownTimeout)))
	g.release(all, budget)
	dctx, cancel := context.WithTimeout(context.Background(), g.svc.cfg.RequestTimeout)
	defer cancel()
	if err := g.kv.Delete(dctx, g.prefix+g.id); err != nil {
		g.log.Warn("leaving the partition group failed; the others take over when the member key expires", "error", err)
	}
}

func deadlineOr(ctx context.Context, d time.Time) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return d
}

func (g *group) stats() SubscriptionStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	total := g.retired
	for _, s := range g.owned {
		total = addStats(total, s.Stats())
	}
	return total
}

// avgHandlerTime is the mean handler time of the owned partitions that
// have one.
func (g *group) avgHandlerTime() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var sum time.Duration
	n := 0
	for p, s := range g.owned {
		if d := time.Duration(s.avgHandler.Load()); d > 0 && !g.releasing[p] {
			sum += d
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / time.Duration(n)
}

func addStats(a, b SubscriptionStats) SubscriptionStats {
	a.Received += b.Received
	a.Acked += b.Acked
	a.Retried += b.Retried
	a.DeadLettered += b.DeadLettered
	a.HandedBack += b.HandedBack
	a.AckFailed += b.AckFailed
	a.DeadLetterFailed += b.DeadLetterFailed
	a.InProgress += b.InProgress
	return a
}

// Partitions lists the partitions this instance consumes now, for a
// Partitioned subscription (nil otherwise). A partition being handed over
// to another instance is no longer listed.
func (s *Subscription) Partitions() []int {
	if s.group == nil {
		return nil
	}
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	out := make([]int, 0, len(s.group.owned))
	for p := range s.group.owned {
		if !s.group.releasing[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
