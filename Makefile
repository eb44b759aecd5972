# The two commands of the README: `make devnet` (or `go run ./cmd/phala devnet`)
# and `make test`.
GO ?= go

.PHONY: devnet test model build bench fuzz proto

devnet:
	$(GO) run ./cmd/phala devnet

# Unit, in-process and multi-process (e2e) tests. Fuzz targets run their seed corpora.
# The race detector skips pruntime/vm: its tests are mostly compiled wasm,
# which the detector slows sixfold without seeing it.
test:
	$(GO) vet ./...
	$(MAKE) model
	$(GO) test -timeout 30m ./...
	$(GO) test -race -timeout 10m ./chain/... ./proof/ ./crypto/ ./pruntime/ ./pruntime/lightclient/ ./pruntime/system/ ./internal/querywire/ ./client/

# Model check of the root key rotation (docs/eras.md, "The model").
# Needs spin and gcc: apt-get install spin.
model:
	bash model/check.sh

build:
	$(GO) build -o bin/phala ./cmd/phala

# Benchmarks print figures as ratios against a baseline run in the same process.
bench:
	$(GO) run ./bench/chainbench
	$(GO) run ./bench/syncbench
	$(GO) run ./bench/contractbench
	$(GO) run ./bench/recoverybench
	$(GO) run ./bench/rotationbench
	$(GO) test -run '^$$' -bench WasmVsNative ./contracts/token

# Each fuzz target for a while (FUZZTIME, default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./chain/auth -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proof -run '^$$' -fuzz '^FuzzVerifyEventLog$$' -fuzztime $(FUZZTIME)
	$(GO) test ./proof -run '^$$' -fuzz '^FuzzVerifyState$$' -fuzztime $(FUZZTIME)
	$(GO) test ./crypto -run '^$$' -fuzz '^FuzzVerifyAgreesWithStdlib$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tee/sim -run '^$$' -fuzz '^FuzzVerifyQuote$$' -fuzztime $(FUZZTIME)
	$(GO) test ./attest -run '^$$' -fuzz '^FuzzVerifyEvidence$$' -fuzztime $(FUZZTIME)
	$(GO) test ./attest -run '^$$' -fuzz '^FuzzServeReport$$' -fuzztime $(FUZZTIME)
	$(GO) test ./attest -run '^$$' -fuzz '^FuzzClientResponse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./crypto -run '^$$' -fuzz '^FuzzHPKEOpen$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chain/registry -run '^$$' -fuzz '^FuzzDecodeWorkerInfo$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chain/mq -run '^$$' -fuzz '^FuzzValidateSigned$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chain/staking -run '^$$' -fuzz '^FuzzSeqPhragmen$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pruntime/system -run '^$$' -fuzz '^FuzzSealedOpen$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pruntime/lightclient -run '^$$' -fuzz '^FuzzIngest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pruntime/vm -run '^$$' -fuzz '^FuzzInstrument$$' -fuzztime $(FUZZTIME)
	$(GO) test ./chain/contracts -run '^$$' -fuzz '^FuzzGunzip$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/querywire -run '^$$' -fuzz '^FuzzOpenRequest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s
	$(GO) test ./internal/querywire -run '^$$' -fuzz '^FuzzPendingOpen$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s
	$(GO) test ./pruntime -run '^$$' -fuzz '^FuzzDecodeCheckpoint$$' -fuzztime $(FUZZTIME)

# Regenerate protobuf code (committed; CI does not need protoc).
# Needs: apt-get install protobuf-compiler; go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.5
# and google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
proto:
	protoc -I proto --go_out=. --go_opt=module=github.com/phala-go/phala proto/phala/chain/v1/*.proto
	protoc -I proto --go_out=. --go_opt=module=github.com/phala-go/phala proto/phala/tee/v1/*.proto
	protoc -I proto --go_out=. --go_opt=module=github.com/phala-go/phala --go-grpc_out=. --go-grpc_opt=module=github.com/phala-go/phala proto/phala/pruntime/v1/*.proto
