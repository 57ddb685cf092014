# The two commands a new user needs (see README.md):
#   make demo   local mode: embedded NATS, a local ClickHouse, a demo broadcast day
#   make test   every test, against real NATS and real ClickHouse (18.16 and chDB)

CHDB_LIB_PATH ?= $(CURDIR)/.cache/chdb/libchdb.so
export CHDB_LIB_PATH

.PHONY: demo test build bench fmt vet

demo:
	scripts/deps.sh clickhouse
	go run ./cmd/airtally local

test:
	scripts/deps.sh all
	go vet ./...
	go test -count=1 -timeout 20m ./...

build:
	go build -o bin/airtally ./cmd/airtally

bench:
	scripts/deps.sh clickhouse
	go run ./cmd/airtally bench

fmt:
	gofmt -l -w .

vet:
	go vet ./...
