package framework

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// StreamSpec declares a stream in code. EnsureStream creates it if missing,
// updates fields JetStream can change, and refuses incompatible changes.
type StreamSpec struct {
	// Name of the stream, e.g. ORDERS.
	Name string
	// Subjects it stores, e.g. orders.>.
	Subjects []string
	// Storage is file (default) or memory.
	Storage jetstream.StorageType
	// Retention is limits (default), interest or work queue.
	Retention jetstream.RetentionPolicy
	// Replicas; 0 takes Config.Replicas.
	Replicas int
	// MaxAge discards older messages; 0 keeps them.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; 0 is unlimited.
	MaxBytes int64
	// MaxMsgs bounds the message count; 0 is unlimited.
	MaxMsgs int64
	// MaxMsgSize bounds one message; 0 is the server's max_payload.
	MaxMsgSize int32
	// Duplicates is the de-duplication window for event ids; 0 is 2 minutes.
	Duplicates time.Duration
	// Owner is the service that owns the stream, by its Config.ServiceName
	// (shared by all its instances): the one that publishes the events it
	// stores. Empty means the calling service. See EnsureStream for what
	// owning allows.
	Owner string
	// Partitions splits the keyed subjects into this many partitions for
	// Partitioned subscriptions: the server stores orders.created.v1.<key>
	// as orders.created.v1.<partition>.<key>. 0 does not partition. It
	// cannot be changed on an existing stream.
	Partitions int
}

const defaultDuplicates = 2 * time.Minute

func (s StreamSpec) config(defaultReplicas int) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   s.Subjects,
		Storage:    s.Storage,
		Retention:  s.Retention,
		Replicas:   s.Replicas,
		MaxAge:     s.MaxAge,
		MaxBytes:   s.MaxBytes,
		MaxMsgs:    s.MaxMsgs,
		MaxMsgSize: s.MaxMsgSize,
		Duplicates: s.Duplicates,
		Discard:    jetstream.DiscardOld,
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = defaultReplicas
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = defaultDuplicates
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	if cfg.MaxMsgs == 0 {
		cfg.MaxMsgs = -1
	}
	if cfg.MaxMsgSize == 0 {
		cfg.MaxMsgSize = -1
	}
	s.applyPartitions(&cfg)
	return cfg
}

func (s StreamSpec) validate() error {
	var errs []error
	if err := validateStreamName(s.Name); err != nil {
		errs = append(errs, fmt.Errorf("name %w", err))
	}
	if len(s.Subjects) == 0 {
		errs = append(errs, errors.New("no subjects; declare e.g. orders.>"))
	}
	for _, subj := range s.Subjects {
		if err := wire.ValidateFilter(subj); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.partitionProblems(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stream %q: %w", s.Name, err)
	}
	return nil
}

// declareStream is Service.EnsureStream on c.
func declareStream(ctx context.Context, c *Conn, spec StreamSpec) (jetstream.Stream, error) {
	owner := spec.Owner
	if owner == "" {
		owner = c.cfg.ServiceName
	} else if err := wire.ValidateToken(owner); err != nil {
		return nil, fmt.Errorf("stream %q: Owner must be a service name (Config.ServiceName): %w", spec.Name, err)
	}
	return ensureStream(ctx, c, spec, owner)
}

// ensureStream is EnsureStream with the owner resolved.
func ensureStream(ctx context.Context, c *Conn, spec StreamSpec, owner string) (_ jetstream.Stream, err error) {
	ctx, perm := c.watchPermissions(ctx, c.jsPrefixes()...) // a refused API call fails now, naming the subject
	defer func() { err = perm.explain(err); perm.done() }()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	// Reconciling is idempotent, so a try that timed out (perhaps after the
	// server acted) is simply run again.
	st, err := retryTransient(ctx, c, "stream "+spec.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return reconcileStream(ctx, c, spec, owner)
	})
	if err == nil {
		c.declared.Store(spec.Name, struct{}{})
	}
	return st, err
}

func reconcileStream(ctx context.Context, c *Conn, spec StreamSpec, owner string) (jetstream.Stream, error) {
	want := spec.config(c.cfg.Replicas)
	if want.Metadata == nil {
		want.Metadata = map[string]string{}
	}
	want.Metadata[ownerMetadataKey] = owner
	st, err := c.JS.Stream(ctx, spec.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = c.JS.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create stream %s (subjects %v): %w", spec.Name, spec.Subjects, err)
		}
		c.log.Info("stream created", "stream", spec.Name, "subjects", spec.Subjects, "replicas", want.Replicas, "owner", owner)
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", spec.Name, err)
	}
	have := st.CachedInfo().Config
	if err := compareImmutable("stream "+spec.Name, []immutableField{
		{"Storage", have.Storage.String(), want.Storage.String()},
		{"Retention", have.Retention.String(), want.Retention.String()},
	}); err != nil {
		return nil, err
	}
	if err := checkPartitions(spec, have); err != nil { // whoever declares it
		return nil, err
	}
	recorded := have.Metadata[ownerMetadataKey]
	diffs := streamDiffs(have, want)
	switch me := c.cfg.ServiceName; {
	case owner != me: // a consumer with the owner's declaration: verify only
		if err := checkStoresSubjects(spec.Name, have, want, cmp.Or(recorded, owner)); err != nil {
			return nil, err
		}
		if len(diffs) > 0 {
			c.log.Debug("stream differs from this service's copy of its declaration; left to its owner", "stream", spec.Name, "owner", cmp.Or(recorded, owner), "fields", diffNames(diffs))
		}
		return st, nil
	case recorded == me: // the owner: reconcile
	case recorded == "": // adopt, but do not narrow
		if err := refuseNarrowing(spec.Name, diffs); err != nil {
			return nil, err
		}
	default: // another service owns it
		if err := refuseForeign(spec.Name, diffs, recorded); err != nil {
			return nil, err
		}
		return st, nil
	}
	if len(diffs) == 0 && recorded == owner {
		return st, nil
	}
	merged := have
	merged.Subjects, merged.Replicas, merged.MaxAge = want.Subjects, want.Replicas, want.MaxAge
	merged.MaxBytes, merged.MaxMsgs, merged.MaxMsgSize, merged.Duplicates = want.MaxBytes, want.MaxMsgs, want.MaxMsgSize, want.Duplicates
	merged.Metadata = maps.Clone(have.Metadata)
	if merged.Metadata == nil {
		merged.Metadata = map[string]string{}
	}
	merged.Metadata[ownerMetadataKey] = owner
	st, err = c.JS.UpdateStream(ctx, merged)
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", spec.Name, err)
	}
	level, msg := slog.LevelInfo, "stream updated"
	if slices.ContainsFunc(diffs, func(d streamDiff) bool { return d.narrows }) {
		level, msg = slog.LevelWarn, "stream narrowed by its owner" // fewer subjects, shorter retention or lower limits
	}
	c.log.Log(ctx, level, msg, "stream", spec.Name, "fields", diffNames(diffs), "subjects", want.Subjects, "max_age", want.MaxAge, "replicas", want.Replicas, "owner", owner)
	return st, nil
}

type immutableField struct{ name, have, want string }

func compareImmutable(what string, fields []immutableField) error {
	var errs []error
	for _, f := range fields {
		if f.have != f.want {
			errs = append(errs, fmt.Errorf("%w: %s field %s: server has %q, code declares %q; JetStream cannot change it in place: declare the server's value, or delete and recreate (data loss)",
				ErrIncompatibleChange, what, f.name, f.have, f.want))
		}
	}
	return errors.Join(errs...)
}
