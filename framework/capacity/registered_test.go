package capacity

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jetkit/jetkit/framework"
	"github.com/jetkit/jetkit/internal/wire"
	"github.com/jetkit/jetkit/testenv"
)

// Watched from outside (no local subscription), a consumer read by two
// instances is known to have two, each working at its own rate, from the
// registrations the services keep; an instance that shuts down leaves; a
// forged registration is ignored.
func TestRegisteredInstances(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := testenv.Start(t)
	spec := framework.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}}
	topic := framework.MustNewTopic[parcel]("jobs.run.v1")
	const each = 20 * time.Millisecond
	var instances []*framework.Service
	for range 2 {
		svc := testenv.NewService(t, srv.Config("worker"))
		if _, err := svc.EnsureStream(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if _, err := framework.Subscribe(ctx, svc, topic, "workers", func(context.Context, parcel, *framework.Message) error {
			time.Sleep(each) // the work
			return nil
		}, &framework.SubscribeOptions{Concurrency: 2}); err != nil {
			t.Fatal(err)
		}
		instances = append(instances, svc)
	}
	for i := range 2000 {
		if _, err := topic.PublishAsync(ctx, instances[0], parcel{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}

	// A service writing a registration for a consumer it does not read
	// claims absurd figures: it is not counted.
	ops, err := framework.Connect(ctx, srv.Config("ops"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	testenv.Eventually(t, 30*time.Second, "the registrations bucket", func() bool {
		_, err := ops.JS.KeyValue(ctx, wire.InstanceBucket)
		return err == nil
	})
	kv, err := ops.JS.KeyValue(ctx, wire.InstanceBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, wire.InstanceKeyPrefix("JOBS", "workers")+"forged", []byte(`{"service":"x","concurrency":-1000,"avg_handler_ns":1}`)); err != nil {
		t.Fatal(err)
	}

	s, err := NewSampler(ops.JS, "JOBS", "workers")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEstimator(Params{})
	var est Estimate
	testenv.Eventually(t, 60*time.Second, "2 registered instances with handler timing", func() bool {
		mustSample(t, s)
		if len(s.Samples()) < 2 {
			return false
		}
		est, err = e.Estimate("JOBS", "workers", s.Samples())
		return err == nil && est.Instances == 2 && est.ServiceSource == SourceHandlerTiming
	})
	// 2 handlers of 20 ms (plus the framework's own work) per instance.
	if mu, want := est.ServiceRate.PerSecond, 2/each.Seconds(); mu < 0.7*want || mu > 1.05*want {
		t.Errorf("μ %.1f/s per instance from the registrations, want about %.0f/s", mu, want)
	}
	if last := s.Samples()[len(s.Samples())-1]; last.IgnoredRegistrations != 1 || last.Registered.Instances != 2 {
		t.Errorf("registered %+v, ignored %d: want 2 instances and the forged one ignored", last.Registered, last.IgnoredRegistrations)
	}
	t.Logf("instances %d (%s), μ %.1f/s (%s)", est.Instances, est.InstancesSource, est.ServiceRate.PerSecond, est.ServiceRate.Note)

	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := instances[1].Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	smp := mustSample(t, s)
	if smp.Registered == nil || smp.Registered.Instances != 1 {
		t.Fatalf("after one instance shut down: registered %+v, want 1 instance", smp.Registered)
	}
}

// A consumer whose only instance hangs is STALL, and the estimate names
// that instance from its registration: the service, its instance id, how
// many handlers run and for how long.
func TestStallNamesTheStuckInstance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := testenv.Start(t)
	svc := testenv.NewService(t, srv.Config("worker"))
	if _, err := svc.EnsureStream(ctx, framework.StreamSpec{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the service shuts down
	topic := framework.MustNewTopic[parcel]("jobs.run.v1")
	if _, err := framework.Subscribe(ctx, svc, topic, "workers", func(ctx context.Context, _ parcel, _ *framework.Message) error {
		<-release // hangs
		return nil
	}, &framework.SubscribeOptions{Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := topic.Publish(ctx, svc, parcel{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ops, err := framework.Connect(ctx, srv.Config("ops"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	s, err := NewSampler(ops.JS, "JOBS", "workers")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEstimator(Params{})
	var est Estimate
	testenv.Eventually(t, 30*time.Second, "STALL naming the stuck instance", func() bool {
		mustSample(t, s)
		if len(s.Samples()) < 3 {
			return false
		}
		est, err = e.Estimate("JOBS", "workers", s.Samples())
		return err == nil && est.Status == StatusStall && len(est.Stuck) == 1
	})
	if b := est.Stuck[0]; b.Service != "worker" || b.Running != 1 || b.Oldest <= 0 || b.Instance == "" ||
		!strings.Contains(est.StatusReason, "worker/"+b.Instance) {
		t.Fatalf("stuck %+v, reason %q: want the worker instance with 1 handler running", b, est.StatusReason)
	}
	t.Logf("%s: %s", est.Status, est.StatusReason)
}
