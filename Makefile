# jetkit — see README.md. Needs only Go and make.
GO ?= go
PKGS := ./...

.PHONY: help run test vet lint fmt-check unit bench build compose-up compose-down

## help: list the targets
help:
	@sed -n 's/^## \([a-z-]*\): /\1\t/p' $(MAKEFILE_LIST) | awk -F'\t' '{printf "  %-13s %s\n", $$1, $$2}'

## run: the sample system on an embedded NATS server (Ctrl-C to stop).
## It builds bin/jetkit and runs it (go run would turn Ctrl-C into exit 1).
run: build
	./bin/jetkit dev

## test: vet, staticcheck, format check and the race-enabled test suite
test: vet lint fmt-check unit

## lint: staticcheck (fetched through the Go module proxy on first use)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## bench: raw nats.go vs jetkit in one run, printed as ratios
bench:
	$(GO) run ./cmd/jetkit bench --short

build:
	@test -x bin/jetkit || echo "building bin/jetkit: the first build compiles every dependency (a few minutes on a cold cache)"
	$(GO) build -o bin/jetkit ./cmd/jetkit

## compose-up: build the services and start the local 3-node cluster (docker-compose.yml)
COMPOSE ?= docker compose
compose-up:
	$(COMPOSE) up --build -d --wait

## compose-down: stop and remove the containers; the JetStream volumes are kept (add -v to drop them)
compose-down:
	$(COMPOSE) down
