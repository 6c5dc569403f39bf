package scaffolding

import (
	"errors"
	"go/format"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/jetkit/jetkit/framework"
)

// localJetkit is the checkout these tests run in, as a replace target.
func localJetkit(t *testing.T) *Jetkit {
	t.Helper()
	root := FindJetkitRoot(".")
	if root == "" {
		t.Fatal("the scaffolding tests must run inside a jetkit checkout")
	}
	jk, err := LocateJetkit(root, ".")
	if err != nil {
		t.Fatal(err)
	}
	return &jk
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGenerateReportsEveryInvalidInputAndWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "svc")
	_, err := Generate(Spec{Name: "Bad_Name", Module: "nodot", Dir: dir,
		Consumes: []string{"orders.*.v1"}, Publishes: []string{"payments.settled"}, Jetkit: localJetkit(t)})
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("Generate = %v, want ErrInvalidInput", err)
	}
	for _, want := range []string{`service name "Bad_Name"`, `module path "nodot"`, `"orders.*.v1"`, `"payments.settled"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Generate wrote %s despite invalid input (stat: %v)", dir, err)
	}
}

func TestGenerateRefusesNonEmptyDirWithoutForce(t *testing.T) {
	dir := t.TempDir()
	spec := Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t)}
	if _, err := Generate(spec); err != nil {
		t.Fatal(err)
	}
	userFile := filepath.Join(dir, "NOTES.md")
	if err := os.WriteFile(userFile, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	mainGo := filepath.Join(dir, "main.go")
	if err := os.WriteFile(mainGo, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(spec)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second Generate = %v, want a refusal naming --force", err)
	}
	if got := readFile(t, mainGo); got != "changed" {
		t.Fatalf("refused Generate still rewrote main.go")
	}
	spec.Force = true
	if _, err := Generate(spec); err != nil {
		t.Fatalf("Generate with Force: %v", err)
	}
	if got := readFile(t, userFile); got != "mine" {
		t.Fatalf("Generate with Force changed a file it does not generate: %q", got)
	}
	if got := readFile(t, mainGo); !strings.Contains(got, "package main") {
		t.Fatalf("Generate with Force did not rewrite main.go")
	}
}

func TestGenerateOutput(t *testing.T) {
	dir := t.TempDir()
	jk := localJetkit(t)
	res, err := Generate(Spec{Name: "order-api", Module: "example.com/order-api", Dir: dir, Jetkit: jk,
		Consumes: []string{"orders.created.v1", "orders.cancelled.v1"}, Publishes: []string{"payments.settled.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range res.Files {
		if !strings.HasSuffix(rel, ".go") {
			continue
		}
		src := readFile(t, filepath.Join(dir, rel))
		if out, err := format.Source([]byte(src)); err != nil || string(out) != src {
			t.Errorf("%s is not gofmt-clean (err %v)", rel, err)
		}
	}
	for _, want := range []string{
		"internal/events/orders_created_v1.go", "internal/events/orders_cancelled_v1_test.go",
		"internal/events/orders_stream.go", "internal/events/payments_stream.go",
		"internal/handlers/orders_created_v1.go", "internal/handlers/orders_created_v1_test.go",
		"internal/handlers/orders_cancelled_v1_test.go", "Dockerfile", "Makefile", ".env.example", "README.md", "go.sum",
	} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("missing %s: %v", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "internal/handlers/payments_settled_v1.go")); err == nil {
		t.Errorf("a handler was generated for a published-only event")
	}

	gomod, err := modfile.Parse("go.mod", []byte(readFile(t, filepath.Join(dir, "go.mod"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	jf, err := modfile.Parse("go.mod", jk.GoMod, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{JetkitModule: placeholderVersion}
	for _, r := range jf.Require {
		want[r.Mod.Path] = r.Mod.Version
	}
	got := map[string]string{}
	for _, r := range gomod.Require {
		got[r.Mod.Path] = r.Mod.Version
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("generated go.mod requires %v,\nwant jetkit's versions %v", got, want)
	}
	if len(gomod.Replace) != 1 || gomod.Replace[0].New.Path != jk.ReplaceDir || gomod.Go.Version != jf.Go.Version {
		t.Errorf("generated go.mod: replace %v, go %v; want jetkit => %s, go %s", gomod.Replace, gomod.Go, jk.ReplaceDir, jf.Go.Version)
	}

	setup := readFile(t, filepath.Join(dir, setupFile))
	for _, want := range []string{`const Durable = "order-api"`, `"orders-created-v1", h.OrdersCreatedV1`, `"orders-cancelled-v1", h.OrdersCancelledV1`} {
		if !strings.Contains(setup, want) {
			t.Errorf("setup.go lacks %s", want)
		}
	}
	if streams := readFile(t, filepath.Join(dir, streamsFile)); strings.Count(streams, "OrdersStream,") != 1 || !strings.Contains(streams, "PaymentsStream,") {
		t.Errorf("streams.go should list OrdersStream once and PaymentsStream:\n%s", streams)
	}

	readme, env := readFile(t, filepath.Join(dir, "README.md")), readFile(t, filepath.Join(dir, ".env.example"))
	cfg := reflectEnvNames()
	for _, name := range append(cfg, "HTTP_ADDR", "LOG_LEVEL") {
		if !strings.Contains(readme, "`ORDER_API_"+name+"`") || !strings.Contains(env, "ORDER_API_"+name+"=") {
			t.Errorf("README.md or .env.example does not list ORDER_API_%s", name)
		}
	}
	if !strings.Contains(env, "# ORDER_API_NATS_PASSWORD=") {
		t.Errorf(".env.example should leave secrets commented out")
	}
	if !strings.Contains(readme, "| `orders.created.v1` | consumes | `events.OrdersCreatedV1` | `ORDERS` | `order-api-orders-created-v1` |") {
		t.Errorf("README.md does not list orders.created.v1 with its durable consumer")
	}
	docker := readFile(t, filepath.Join(dir, "Dockerfile"))
	for _, want := range []string{"AS build", "CGO_ENABLED=0", "USER nonroot", "FROM golang:" + goMinor(jk.GoMod), "static"} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	makefile := readFile(t, filepath.Join(dir, "Makefile"))
	for _, want := range []string{"\nrun: build-dev\n\t./bin/order-api-dev -embedded-nats\n", "\ntest:", "$(GO) build -tags dev -o bin/order-api-dev ."} {
		if !strings.Contains(makefile, want) {
			t.Errorf("Makefile lacks %q", want)
		}
	}
	// go run exits 1 after Ctrl-C, and make reports it as an error.
	if strings.Contains(makefile, "$(GO) run") {
		t.Errorf("Makefile runs the service with go run:\n%s", makefile)
	}
	mainGo := readFile(t, filepath.Join(dir, "main.go"))
	for _, want := range []string{"NoExportByDefault: embedded", "ReplaceAttr: telemetry.ReplaceDurations"} {
		if !strings.Contains(mainGo, want) {
			t.Errorf("main.go lacks %q: a local run exports to no collector, JSON logs write durations as text", want)
		}
	}
}

// reflectEnvNames lists framework.Config's variable names.
func reflectEnvNames() []string {
	vars, err := serviceEnvVars("x")
	if err != nil {
		panic(err)
	}
	var names []string
	for _, v := range vars[:len(vars)-len(ownVars)] {
		names = append(names, v.Name)
	}
	return names
}

func TestEnvVarsDescribeEveryConfigField(t *testing.T) {
	vars, err := serviceEnvVars("payments")
	if err != nil {
		t.Fatal(err)
	}
	def := framework.DefaultConfig()
	if vars[0].Name != "SERVICE_NAME" || vars[0].Default != "payments" {
		t.Fatalf("first variable = %+v, want SERVICE_NAME defaulting to the service name", vars[0])
	}
	n := 0
	for i := range reflect.TypeOf(def).NumField() {
		if reflect.TypeOf(def).Field(i).Tag.Get("envconfig") != "" {
			n++
		}
	}
	if len(vars) != n+len(ownVars) {
		t.Fatalf("%d variables for %d config fields and %d own", len(vars), n, len(ownVars))
	}
}

func TestGoModFromBuildInfo(t *testing.T) {
	jk := Jetkit{Version: "v1.2.3", Deps: map[string]string{
		"github.com/nats-io/nats.go": "v1.55.0", "go.opentelemetry.io/otel": "v1.47.0"}}
	out, err := jk.goMod("example.com/payments")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", out, nil)
	if err != nil {
		t.Fatalf("generated go.mod does not parse: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range f.Require {
		got[r.Mod.Path] = r.Mod.Version
	}
	want := map[string]string{JetkitModule: "v1.2.3", "github.com/nats-io/nats.go": "v1.55.0", "go.opentelemetry.io/otel": "v1.47.0"}
	if !reflect.DeepEqual(got, want) || len(f.Replace) != 0 || f.Module.Mod.Path != "example.com/payments" {
		t.Fatalf("go.mod from build info:\n%s\nwant requires %v and no replace", out, want)
	}
}

func TestLocateJetkit(t *testing.T) {
	root := FindJetkitRoot(".")
	// Inside a checkout, with a binary that has no released version (this
	// test's), nothing is replaced unless asked: the error names the flag
	// and the checkout.
	jk, err := LocateJetkit("", ".")
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "--jetkit-replace "+root) || jk.ReplaceDir != "" {
		t.Fatalf("LocateJetkit without --jetkit-replace in a checkout = %+v, %v; want no replace and an error naming --jetkit-replace %s", jk, err, root)
	}
	jk, err = LocateJetkit(root, ".")
	if err != nil || jk.ReplaceDir != root || jk.Version != placeholderVersion || len(jk.GoMod) == 0 || len(jk.GoSum) == 0 {
		t.Fatalf("LocateJetkit(--jetkit-replace %s) = %+v, %v; want a replace to it with its go.mod and go.sum", root, jk.ReplaceDir, err)
	}
	for v, ok := range map[string]bool{"v1.2.3": true, "v0.0.0-20261203084000-abcdefabcdef": true, "(devel)": false, "": false, "v1.2.3+dirty": false} {
		if releasedVersion(v) != ok {
			t.Errorf("releasedVersion(%q) = %v, want %v", v, !ok, ok)
		}
	}
	_, err = LocateJetkit(t.TempDir(), ".")
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "--jetkit-replace") {
		t.Fatalf("LocateJetkit(empty dir) = %v, want an error naming --jetkit-replace", err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LocateJetkit(other, ".")
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), `"example.com/other"`) {
		t.Fatalf("LocateJetkit(other module) = %v, want an error naming the module found", err)
	}
	if got := FindJetkitRoot(filepath.Join(root, "scaffolding", "templates")); got != root {
		t.Fatalf("FindJetkitRoot from a subdirectory = %q, want %q", got, root)
	}
}

// TestGenerateKeyedConsumerDeclaresOnlyItsOwnStream: --consumes
// SUBJECT:keyed makes a keyed topic (the sample publishes
// orders.created.v1.<id>), and the service declares only the stream of
// the domain it publishes into; the producer's stream is listed for tests
// and -embedded-nats only.
func TestGenerateKeyedConsumerDeclaresOnlyItsOwnStream(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t),
		Consumes: []string{"orders.created.v1:keyed"}, Publishes: []string{"payments.settled.v1"}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "internal/events/orders_created_v1.go")); !strings.Contains(got, `framework.MustNewTopic[OrdersCreatedV1]("orders.created.v1", framework.Keyed())`) {
		t.Errorf("orders.created.v1:keyed does not declare a keyed topic:\n%s", got)
	}
	if got := readFile(t, filepath.Join(dir, "internal/events/payments_settled_v1.go")); strings.Contains(got, ", framework.Keyed())") {
		t.Errorf("payments.settled.v1 declared keyed:\n%s", got)
	}
	for _, f := range []string{"internal/handlers/orders_created_v1_test.go", "internal/events/orders_created_v1_test.go"} {
		if got := readFile(t, filepath.Join(dir, f)); !strings.Contains(got, "framework.WithKey(") {
			t.Errorf("%s does not publish the keyed event with a key:\n%s", f, got)
		}
	}
	streams := []byte(readFile(t, filepath.Join(dir, streamsFile)))
	if !regionHolds(streams, "streams", "PaymentsStream,") || regionHolds(streams, "streams", "OrdersStream,") {
		t.Errorf("Streams should list PaymentsStream (owned) and not OrdersStream (the producer's):\n%s", streams)
	}
	if !regionHolds(streams, "consumed-streams", "OrdersStream,") || regionHolds(streams, "consumed-streams", "PaymentsStream,") {
		t.Errorf("ConsumedStreams should list OrdersStream only:\n%s", streams)
	}
	if got := readFile(t, filepath.Join(dir, "README.md")); !strings.Contains(got, "| `orders.created.v1.<key>` | consumes |") {
		t.Errorf("README.md does not show the keyed subject")
	}
}

// TestGenerateRefusesUpperCaseAndUnknownSuffix: Orders.Created.v1 would
// make a stream on Orders.>, which stores none of orders.>.
func TestGenerateRefusesUpperCaseAndUnknownSuffix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "svc")
	_, err := Generate(Spec{Name: "payments", Module: "example.com/payments", Dir: dir, Jetkit: localJetkit(t),
		Consumes: []string{"Orders.Created.v1"}, Publishes: []string{"payments.settled.v1:key"}})
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("Generate = %v, want ErrInvalidInput", err)
	}
	for _, want := range []string{`--consumes Orders.Created.v1:`, `use "orders.created.v1"`, `--publishes payments.settled.v1:key:`, `unknown suffix ":key"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Generate wrote %s despite invalid input", dir)
	}
}
