package framework

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetkit/jetkit/internal/wire"
)

// Partitioned streams (StreamSpec.Partitions). The server computes each
// keyed message's partition from its key with its deterministic
// partition() mapping function and stores the message with the partition
// inserted before the key: orders.created.v1.o-1 is stored as
// orders.created.v1.<p>.o-1. Publishers do not change. Subjects of
// another shape (an unkeyed orders.created.v1) are stored as published.

// partitionsMetadata is the stream metadata key recording the count.
const partitionsMetadata = wire.StreamPartitionsMetadata

// maxPartitions bounds StreamSpec.Partitions: each partition is a durable
// consumer per subscribing service.
const maxPartitions = 1024

// partitionTransform is the stream's subject transform for spec: its one
// subject p.> (p of one to three tokens) has keyed subjects of four tokens,
// <domain>.<event>.v<N>.<key>.
func (s StreamSpec) partitionTransform() (*jetstream.SubjectTransformConfig, error) {
	if len(s.Subjects) != 1 || !strings.HasSuffix(s.Subjects[0], ".>") {
		return nil, fmt.Errorf("Partitions(%d) needs exactly one subject of the form <domain>.> (e.g. orders.>), have %v", s.Partitions, s.Subjects)
	}
	prefix := strings.Split(strings.TrimSuffix(s.Subjects[0], ".>"), ".")
	w := 4 - len(prefix) // wildcard tokens: event, version, key (fewer with a longer prefix)
	if w < 1 || slices.Contains(prefix, "*") {
		return nil, fmt.Errorf("Partitions(%d) needs a subject like orders.> or orders.created.> whose keyed subjects have four tokens, have %q", s.Partitions, s.Subjects[0])
	}
	src := append([]string(nil), prefix...)
	dest := append([]string(nil), prefix...)
	for i := 1; i <= w; i++ {
		src = append(src, "*")
		if i == w {
			dest = append(dest, fmt.Sprintf("{{partition(%d,%d)}}", s.Partitions, w))
		}
		dest = append(dest, fmt.Sprintf("{{wildcard(%d)}}", i))
	}
	return &jetstream.SubjectTransformConfig{Source: strings.Join(src, "."), Destination: strings.Join(dest, ".")}, nil
}

// partitionProblems validates Partitions.
func (s StreamSpec) partitionProblems() error {
	switch {
	case s.Partitions == 0:
		return nil
	case s.Partitions < 0 || s.Partitions > maxPartitions:
		return fmt.Errorf("Partitions(%d): must be between 1 and %d (0: not partitioned)", s.Partitions, maxPartitions)
	}
	_, err := s.partitionTransform()
	return err
}

// applyPartitions adds the transform and the metadata to cfg.
func (s StreamSpec) applyPartitions(cfg *jetstream.StreamConfig) {
	if s.Partitions == 0 {
		return
	}
	tr, err := s.partitionTransform()
	if err != nil {
		return // validate reported it
	}
	cfg.SubjectTransform = tr
	cfg.Metadata = map[string]string{partitionsMetadata: strconv.Itoa(s.Partitions)}
}

// streamPartitions is the partition count recorded on a stream (0: none).
func streamPartitions(cfg jetstream.StreamConfig) int {
	n, _ := strconv.Atoi(cfg.Metadata[partitionsMetadata])
	return n
}

// checkPartitions refuses a change of the partition count: it moves keys
// between partitions, so it is a migration, not an update.
func checkPartitions(spec StreamSpec, have jetstream.StreamConfig) error {
	if n := streamPartitions(have); n != spec.Partitions {
		return fmt.Errorf("%w: stream %s field Partitions: server has %d, code declares %d; changing the partition count moves keys between partitions: "+
			"declare %d, or migrate to a new stream with the new count (see docs/partitions.md)",
			ErrIncompatibleChange, spec.Name, n, spec.Partitions, n)
	}
	return nil
}
