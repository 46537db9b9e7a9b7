# gorun: `make run` runs the demo, `make test` runs the tests.
GO          ?= go
BIN         := bin/gorun
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

FUZZTIME    ?= 30s

.PHONY: all build run test fuzz lint bench bench-cluster bench-cluster-ab bench-sched docs clean

all: lint test

## build: a static binary (CGO_ENABLED=0): without cgo gorun loads no libc and no C resolver at start, 1.5 MiB less peak RSS a run
build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o $(BIN) ./cmd/gorun

## run: the demo task file: successes, a failure, a timeout, the rate limit at work
run: build
	@$(BIN) exec testdata/demo.yaml || echo "(gorun exited $$?: the demo fails and times out a task on purpose)"

## test: go vet, then every test with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## fuzz: fuzz task-file and JSON Lines loading, the simple-command parser, then the shell-template compiler, for FUZZTIME each (crashers land in testdata/fuzz)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./internal/input
	$(GO) test -run '^$$' -fuzz '^FuzzSimpleArgv$$' -fuzztime $(FUZZTIME) ./internal/process
	$(GO) test -run '^$$' -fuzz '^FuzzShellTemplate$$' -fuzztime $(FUZZTIME) ./internal/input

## lint: formatting and staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

## bench: per-task overhead against spawnlimit, xargs -P, rush and GNU parallel (shell lines, simple commands, argv), the spawn cost, task files, then distributed runs (QUICK=1 for a smoke run)
bench:
	bash scripts/bench.sh
	bash scripts/bench-cluster.sh
	$(MAKE) bench-sched

## bench-sched: the scheduler's order: critical path first against input order on random graphs, and the wait of high-priority tasks
bench-sched:
	$(GO) test -run '^$$' -bench '^(BenchmarkScheduleDAG|BenchmarkPriorityWait)$$' -benchtime 1x ./internal/pipeline

## bench-cluster: distributed against local runs: per-task broker overhead, the CPU of each process, scaling over workers (QUICK=1 for a smoke run; DIST_GOMAXPROCS=N)
bench-cluster:
	bash scripts/bench-cluster.sh

## bench-cluster-ab: builds or settings of the distributed side against each other and a local run, in one sitting (AB="NAME=BINARY[:VAR=VALUE,...] ...")
bench-cluster-ab:
	bash scripts/bench-cluster-ab.sh $(AB)

## docs: man pages for every command, generated into docs/man/ (not committed)
docs: build
	$(BIN) man docs/man

clean:
	rm -rf bin docs/man
