package capview

import (
	"strings"
	"testing"

	"github.com/jetkit/jetkit/framework/capacity"
)

// The text view of a partitioned group says how many instances can work
// on it, and why the replicas needed stop at the partition count.
func TestSummaryNamesPartitionsAndTheReplicasNote(t *testing.T) {
	const note = "needs 5 instances but the stream has 4 partitions: more instances add nothing"
	e := capacity.Estimate{Instances: 2, InstancesSource: "registered", Partitions: 4, ReplicasNeeded: 4, ReplicasNote: note,
		SteadyReplicas: 1, Plan: capacity.ScalePlan{Total: -1, Reason: "test"}}
	lines := map[string]string{}
	for _, l := range Summary(e) {
		lines[l.Label] = l.Value
	}
	if got := lines["instances"]; !strings.Contains(got, "4 partitions: at most 4 instances work") {
		t.Errorf("instances line %q does not name the partitions", got)
	}
	if got := lines["replicas needed"]; !strings.HasPrefix(got, "4 (") || !strings.Contains(got, note) {
		t.Errorf("replicas needed line %q does not carry the note", got)
	}
	e.Partitions, e.ReplicasNote = 0, ""
	for _, l := range Summary(e) {
		if strings.Contains(l.Value, "partition") {
			t.Errorf("%s line %q names partitions of an unpartitioned consumer", l.Label, l.Value)
		}
	}
}
