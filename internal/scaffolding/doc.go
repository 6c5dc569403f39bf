// Package scaffolding generates jetkit services and checks its own output.
//
// Generate writes a self-contained service (go.mod, main.go, typed events
// and topics, a handler and a test per consumed event, Dockerfile, Makefile,
// README, .env.example) from the templates embedded under templates/.
// Verify then runs go mod tidy, go vet, go build, go test and a short run
// of the service in the new directory, and names the step that failed.
// AddEvent adds a typed event to an existing generated service: it writes
// new files and inserts lines only between the "jetkit:begin" and
// "jetkit:end" markers, so code outside those regions is never touched.
// Event subjects are lower-case; SUBJECT:keyed declares an event published
// with a key (SUBJECT.<key>). A generated service owns the streams of the
// domains it publishes into and does not declare those of events it only
// consumes (their producers do).
//
//	spec := scaffolding.Spec{Name: "payments", Module: "example.com/payments",
//		Dir: "payments", Consumes: []string{"orders.created.v1:keyed"}}
//	files, err := scaffolding.Generate(spec)
//	...
//	err = scaffolding.Verify(ctx, spec.Dir, scaffolding.VerifyOptions{})
package scaffolding
