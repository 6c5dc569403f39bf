package framework

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ownerMetadataKey is the stream metadata entry naming the service that
// owns the stream (see EnsureStream).
const ownerMetadataKey = "jetkit.owner"

// frameworkOwner owns the dead-letter stream. It is not a valid service
// name (it has a space), so no service owns that stream.
const frameworkOwner = "jetkit framework"

// streamDiff is one field where a declaration differs from the server's
// stream; narrows is true when applying it would take something away:
// subjects, retention or a limit.
type streamDiff struct {
	field, have, want string
	narrows           bool
}

// streamDiffs lists the fields EnsureStream updates in which want differs
// from have.
func streamDiffs(have, want jetstream.StreamConfig) []streamDiff {
	var d []streamDiff
	add := func(field string, changed, narrows bool, h, w any) {
		if changed {
			d = append(d, streamDiff{field, fmt.Sprint(h), fmt.Sprint(w), narrows})
		}
	}
	add("Subjects", !slices.Equal(have.Subjects, want.Subjects), len(uncovered(have.Subjects, want.Subjects)) > 0, have.Subjects, want.Subjects)
	add("MaxAge", have.MaxAge != want.MaxAge, lowerLimit(int64(have.MaxAge), int64(want.MaxAge)), ageText(have.MaxAge), ageText(want.MaxAge))
	add("MaxBytes", have.MaxBytes != want.MaxBytes, lowerLimit(have.MaxBytes, want.MaxBytes), have.MaxBytes, want.MaxBytes)
	add("MaxMsgs", have.MaxMsgs != want.MaxMsgs, lowerLimit(have.MaxMsgs, want.MaxMsgs), have.MaxMsgs, want.MaxMsgs)
	add("MaxMsgSize", have.MaxMsgSize != want.MaxMsgSize, lowerLimit(int64(have.MaxMsgSize), int64(want.MaxMsgSize)), have.MaxMsgSize, want.MaxMsgSize)
	add("Duplicates", have.Duplicates != want.Duplicates, want.Duplicates < have.Duplicates, have.Duplicates, want.Duplicates)
	add("Replicas", have.Replicas != want.Replicas, want.Replicas < have.Replicas, have.Replicas, want.Replicas)
	return d
}

// lowerLimit reports whether limit w is tighter than h, where a value of
// 0 or less is unlimited.
func lowerLimit(h, w int64) bool { return w > 0 && (h <= 0 || w < h) }

func ageText(d time.Duration) string {
	if d <= 0 {
		return "unlimited"
	}
	return d.String()
}

func diffNames(diffs []streamDiff) []string {
	names := make([]string, len(diffs))
	for i, d := range diffs {
		names[i] = d.field
	}
	return names
}

func (d streamDiff) describe(stream string) string {
	s := fmt.Sprintf("stream %s field %s: server has %s, this declaration %s", stream, d.field, d.have, d.want)
	if d.narrows {
		s += " (narrows it)"
	}
	return s
}

// refuseForeign refuses every difference from a stream another service owns.
func refuseForeign(stream string, diffs []streamDiff, owner string) error {
	var errs []error
	for _, d := range diffs {
		errs = append(errs, fmt.Errorf("%w: %s; the stream belongs to service %q (stream metadata %s) and only it changes the stream: change %q's declaration, or, in a service that consumes the stream, set StreamSpec.Owner to %q or do not declare the stream (Subscribe finds it by subject)",
			ErrIncompatibleChange, d.describe(stream), owner, ownerMetadataKey, owner, owner))
	}
	return errors.Join(errs...)
}

// refuseNarrowing refuses the narrowing differences from a stream that
// records no owner.
func refuseNarrowing(stream string, diffs []streamDiff) error {
	var errs []error
	for _, d := range diffs {
		if d.narrows {
			errs = append(errs, fmt.Errorf("%w: %s, and the stream records no owner (it was made outside jetkit or by an older version), so jetkit does not narrow it: declare the server's value, or change the stream with the nats CLI",
				ErrIncompatibleChange, d.describe(stream)))
		}
	}
	return errors.Join(errs...)
}

// checkStoresSubjects checks that the stream stores every subject of the
// consumer's copy of its declaration.
func checkStoresSubjects(stream string, have, want jetstream.StreamConfig, owner string) error {
	missing := uncovered(want.Subjects, have.Subjects)
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: stream %s field Subjects: server has %v, which does not store %v that this declaration needs; the stream belongs to service %q, which changed or never declared them: ask its owner, or subscribe to what it stores",
		ErrIncompatibleChange, stream, have.Subjects, missing, owner)
}

// uncovered returns the subjects of subs that no filter in filters covers.
func uncovered(subs, filters []string) []string {
	var out []string
	for _, s := range subs {
		if !slices.ContainsFunc(filters, func(f string) bool { return subjectCovers(f, s) }) {
			out = append(out, s)
		}
	}
	return out
}

// subjectCovers reports whether every subject that sub matches also
// matches filter (both may hold wildcards).
func subjectCovers(filter, sub string) bool {
	f, s := strings.Split(filter, "."), strings.Split(sub, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(s) > i
		}
		if i >= len(s) || s[i] == ">" || (ft != "*" && ft != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}
