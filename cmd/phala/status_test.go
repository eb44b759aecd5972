package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	"github.com/cometbft/cometbft/p2p"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/proto/chainpb"
)

// statusChain answers the RPC calls `phala status` makes: status,
// abci_info, validators and the abci queries, from the records it holds.
type statusChain struct {
	mu      sync.Mutex
	launch  *chainpb.LaunchState
	workers []*chainpb.Worker
	era     *chainpb.EraState // nil: before the launch
	report  *monitor.Report   // nil: before the first era ended
	rewards *chain.RewardsReport
}

func (f *statusChain) serve(t *testing.T) string {
	t.Helper()
	val := types.NewValidator(ed25519.GenPrivKey().PubKey(), 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req rpctypes.RPCRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		var res any
		switch req.Method {
		case "status":
			res = &ctypes.ResultStatus{NodeInfo: p2p.DefaultNodeInfo{Network: "phala-status-test", Moniker: "node0"},
				SyncInfo: ctypes.SyncInfo{LatestBlockHeight: 330, LatestBlockTime: time.Unix(1_700_000_000, 0).UTC()}}
		case "abci_info":
			res = &ctypes.ResultABCIInfo{Response: abci.InfoResponse{Data: `{"phase":"launched"}`, AppVersion: 1}}
		case "validators":
			res = &ctypes.ResultValidators{BlockHeight: 330, Validators: []*types.Validator{val}, Count: 1, Total: 1}
		case "abci_query":
			var params struct {
				Path string            `json:"path"`
				Data cmtbytes.HexBytes `json:"data"`
			}
			json.Unmarshal(req.Params, &params)
			res = &ctypes.ResultABCIQuery{Response: f.query(t, params.Path)}
		default:
			http.Error(w, "unexpected method "+req.Method, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(rpctypes.NewRPCSuccessResponse(req.ID, res))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (f *statusChain) query(t *testing.T, path string) abci.QueryResponse {
	var v []byte
	var err error
	switch path {
	case chain.QueryLaunch:
		v, err = proto.Marshal(f.launch)
	case chain.QueryWorkers:
		v, err = proto.Marshal(&chainpb.WorkerList{Workers: f.workers})
	case chain.QueryDiscrepancies:
		v, err = proto.Marshal(&chainpb.DiscrepancyList{})
	case chain.QueryEra:
		if f.era != nil {
			v, err = proto.Marshal(f.era)
		}
	case chain.QueryMonitor:
		if f.report != nil {
			v, err = json.Marshal(f.report)
		}
	case chain.QueryRewards:
		if f.rewards != nil {
			v, err = json.Marshal(f.rewards)
		}
	default:
		return abci.QueryResponse{Codespace: "query", Code: 2, Log: "unknown query path " + path}
	}
	if err != nil {
		t.Error(err)
	}
	return abci.QueryResponse{Value: v}
}

func (f *statusChain) set(era *chainpb.EraState, report *monitor.Report) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.era, f.report = era, report
	f.rewards = nil
	if report != nil {
		f.rewards = &chain.RewardsReport{Era: report.Era, Elapsed: time.Minute, Staked: 30_000_000, Supply: 1_000_000_000_000_000,
			InflationPPB: 25_000_000, Minted: 1_500_000, TotalMinted: 4_500_000, MinerPool: 2_000_000, Fees: 250_000,
			Paid: map[string]uint64{"phala1op": 3_750_000}}
	}
}

// Worker identity keys of the status tests: a1 and b2 hold the seats, c3
// and d4 are elected to the next era's, e5 mines.
var (
	keyA1, keyB2, keyC3, keyD4, keyE5 = bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xb2}, 32),
		bytes.Repeat([]byte{0xc3}, 32), bytes.Repeat([]byte{0xd4}, 32), bytes.Repeat([]byte{0xe5}, 32)
	hexA1, hexB2, hexC3, hexD4, hexE5 = hex.EncodeToString(keyA1), hex.EncodeToString(keyB2),
		hex.EncodeToString(keyC3), hex.EncodeToString(keyD4), hex.EncodeToString(keyE5)
	rootKey, newRootKey = bytes.Repeat([]byte{0x3b}, 32), bytes.Repeat([]byte{0x7f}, 32)
)

func newStatusChain() *statusChain {
	f := &statusChain{launch: &chainpb.LaunchState{Round: 1, HandedOver: true,
		Elected:   []*chainpb.Gatekeeper{{SigningKey: keyA1, Backing: 1_500_000}, {SigningKey: keyB2, Backing: 2_000_000}},
		Confirmed: [][]byte{keyA1, keyB2}}}
	for i, k := range [][]byte{keyA1, keyB2, keyC3, keyD4, keyE5} {
		f.workers = append(f.workers, &chainpb.Worker{SigningKey: k, Platform: "sim", RegisteredHeight: int64(i + 1)})
	}
	return f
}

// eraState is era 2's state with the rotation to era 3 in its second
// attempt: both shares in, the new root key distributed, 2 of 5 state
// parts and 40 of 100 keys received, d4's confirmation in.
func eraState() *chainpb.EraState {
	return &chainpb.EraState{Era: 2, RootPublicKey: rootKey, Since: 200, Rotations: 2, Expired: 1,
		Gatekeepers: []*chainpb.Gatekeeper{{SigningKey: keyA1, Backing: 1_500_000}, {SigningKey: keyB2, Backing: 2_000_000}},
		Rotation: &chainpb.Rotation{Era: 3, Attempt: 2, Started: 300, Deadline: 350,
			Incoming:       []*chainpb.Gatekeeper{{SigningKey: keyC3, Backing: 3_000_000}, {SigningKey: keyD4, Backing: 4_250_000}},
			OutgoingLeader: keyA1, IncomingLeader: keyC3, OutgoingShared: true, IncomingShared: true, SharesHeight: 305,
			RootPublicKey: newRootKey, KeysHeight: 310, PartsReceived: 2, Parts: 5, KeysReceived: 40, KeysExpected: 100,
			Confirmed: [][]byte{keyD4}}}
}

// report is era 1's judgement: b2 (a gatekeeper) was unresponsive and lost
// 2.5 PHA.
func report() *monitor.Report {
	return &monitor.Report{Era: 1, Windows: 10, MaxGatekeeper: 10, MaxMiner: 9,
		Counts:       map[string]int64{hexA1: 10, hexB2: 2, hexE5: 9},
		Unresponsive: map[string]uint64{hexB2: 2_500_000},
		Gatekeepers:  []string{hexA1, hexB2}, Miners: []string{hexE5}}
}

func runStatus(t *testing.T, node string, args ...string) string {
	t.Helper()
	out, err := runCLI(t, t.TempDir(), node, append([]string{"status"}, args...)...)
	if err != nil {
		t.Fatalf("phala status %v: %v", args, err)
	}
	return out
}

// statusLines is the text output with each line's runs of blanks (the
// tabwriter's padding) folded into one space.
func statusLines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		ls = append(ls, strings.Join(strings.Fields(l), " "))
	}
	return ls
}

// hasLine reports whether a folded line of out is want.
func hasLine(out, want string) bool {
	for _, l := range statusLines(out) {
		if l == want {
			return true
		}
	}
	return false
}

func TestStatusEraText(t *testing.T) {
	f := newStatusChain()
	f.set(eraState(), report())
	node := f.serve(t)
	out := runStatus(t, node)
	if strings.Contains(out, "election round") {
		t.Errorf("after the launch status still lists the launch's election:\n%s", out)
	}
	for _, want := range []string{
		"root key era: 2 (current since block 200; 2 completed rotations, 1 expired attempt)",
		"root public key: 3b3b3b3b3b3b3b3b…",
		"era gatekeepers: 2",
		"a1a1a1a1a1a1a1a1… backing 1.5 PHA holds the root key",
		"b2b2b2b2b2b2b2b2… backing 2 PHA holds the root key",
		"rotation: to era 3, attempt 2 (started at block 300, deadline block 350)",
		"leaders: outgoing a1a1a1a1a1a1a1a1… incoming c3c3c3c3c3c3c3c3…",
		"shares: both in",
		"new root key: distributed at block 310 (7f7f7f7f7f7f7f7f…)",
		"state: parts 2 of 5, keys 40 of 100",
		"confirmations: 1 of 2",
		"c3c3c3c3c3c3c3c3… backing 3 PHA not confirmed",
		"d4d4d4d4d4d4d4d4… backing 4.25 PHA confirmed",
		"responsiveness: era 1, 10 heartbeat windows (most: 10 by a gatekeeper, 9 by a miner); 1 of 3 judged workers unresponsive",
		"a1a1a1a1a1a1a1a1… gatekeeper 10 heartbeats responsive",
		"b2b2b2b2b2b2b2b2… gatekeeper 2 heartbeats unresponsive, slashed 2.5 PHA",
		"e5e5e5e5e5e5e5e5… miner 9 heartbeats responsive",
		// The workers section names them the same way.
		"e5e5e5e5e5e5e5e5… sim measurement expires never",
	} {
		if !hasLine(out, want) {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}

	// An earlier stage: one share missing, no key, no state part yet.
	es := eraState()
	es.Rotation.IncomingShared, es.Rotation.SharesHeight = false, 0
	es.Rotation.RootPublicKey, es.Rotation.KeysHeight = nil, 0
	es.Rotation.PartsReceived, es.Rotation.Parts, es.Rotation.KeysReceived, es.Rotation.Confirmed = 0, 0, 0, nil
	f.set(es, report())
	out = runStatus(t, node)
	for _, want := range []string{
		"shares: 1 of 2 in (the incoming leader's is missing)",
		"new root key: not distributed yet",
		"state: no part yet, keys 0 of 100",
		"confirmations: 0 of 2",
		"d4d4d4d4d4d4d4d4… backing 4.25 PHA not confirmed",
	} {
		if !hasLine(out, want) {
			t.Errorf("early stage: no line %q in\n%s", want, out)
		}
	}
	es.Rotation.OutgoingShared = false
	f.set(es, report())
	if out := runStatus(t, node); !hasLine(out, "shares: 0 of 2 in") {
		t.Errorf("no share in:\n%s", out)
	}
	es.Rotation.OutgoingShared, es.Rotation.IncomingShared = false, true
	f.set(es, report())
	if out := runStatus(t, node); !hasLine(out, "shares: 1 of 2 in (the outgoing leader's is missing)") {
		t.Errorf("outgoing share missing:\n%s", out)
	}

	// The state complete, every confirmation in.
	es = eraState()
	es.Rotation.PartsReceived, es.Rotation.KeysReceived, es.Rotation.StateHeight = 5, 100, 320
	es.Rotation.Confirmed = [][]byte{keyD4, keyC3}
	f.set(es, report())
	out = runStatus(t, node)
	for _, want := range []string{
		"state: parts 5 of 5, keys 100 of 100 (complete at block 320)",
		"confirmations: 2 of 2",
		"c3c3c3c3c3c3c3c3… backing 3 PHA confirmed",
	} {
		if !hasLine(out, want) {
			t.Errorf("late stage: no line %q in\n%s", want, out)
		}
	}

	// No rotation in progress, one of each.
	es = eraState()
	es.Rotation, es.Rotations, es.Expired = nil, 1, 0
	f.set(es, report())
	out = runStatus(t, node)
	if !hasLine(out, "rewards: era 1 (1m0s): minted 1.5 PHA for stakers (2.50%/year on 30 PHA staked), paid 2 PHA from the miner pool and 0.25 PHA of fees by work; 4.5 PHA minted since genesis") ||
		!hasLine(out, "phala1op 3.75 PHA") {
		t.Errorf("the era's rewards are missing:\n%s", out)
	}
	if !hasLine(out, "root key era: 2 (current since block 200; 1 completed rotation, 0 expired attempts)") || !hasLine(out, "rotation: none in progress") ||
		strings.Contains(out, "leaders:") || strings.Contains(out, "confirmations:") {
		t.Errorf("no rotation:\n%s", out)
	}

	// Before the launch and before the first era ended: neither section.
	f.set(nil, nil)
	out = runStatus(t, node)
	for _, absent := range []string{"root key era", "root public key", "era gatekeepers", "rotation:", "responsiveness", "heartbeat", "rewards:"} {
		if strings.Contains(out, absent) {
			t.Errorf("%q without an era or report:\n%s", absent, out)
		}
	}
	if !hasLine(out, "workers: 5") {
		t.Errorf("status without eras lost its workers:\n%s", out)
	}
	if !strings.Contains(out, "election round") {
		t.Errorf("before the launch status lost the election's progress:\n%s", out)
	}
}

func TestStatusEraJSON(t *testing.T) {
	f := newStatusChain()
	f.set(eraState(), report())
	node := f.serve(t)
	raw := runStatus(t, node, "-o", "json")
	var st client.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	e := st.Era
	if e == nil {
		t.Fatalf("no era in %s", raw)
	}
	if e.Era != 2 || e.RootPublicKey != hex.EncodeToString(rootKey) || e.Since != 200 || e.Rotations != 2 || e.Expired != 1 ||
		len(e.Gatekeepers) != 2 || e.Gatekeepers[0] != (client.EraGatekeeper{Worker: hexA1, Backing: 1_500_000}) ||
		e.Gatekeepers[1] != (client.EraGatekeeper{Worker: hexB2, Backing: 2_000_000}) {
		t.Errorf("era %+v", e)
	}
	r := e.Rotation
	if r == nil {
		t.Fatalf("no rotation in %s", raw)
	}
	wantRot := client.RotationStatus{Era: 3, Attempt: 2, Started: 300, Deadline: 350, OutgoingLeader: hexA1, IncomingLeader: hexC3,
		OutgoingShared: true, IncomingShared: true, SharesHeight: 305, KeyDistributed: true, RootPublicKey: hex.EncodeToString(newRootKey), KeysHeight: 310,
		PartsReceived: 2, Parts: 5, KeysReceived: 40, KeysExpected: 100, Confirmations: 1}
	gotRot := *r
	gotRot.Incoming = nil
	if !reflect.DeepEqual(gotRot, wantRot) {
		t.Errorf("rotation %+v\nwant     %+v", gotRot, wantRot)
	}
	if len(r.Incoming) != 2 || r.Incoming[0] != (client.GatekeeperStatus{Worker: hexC3, Backing: 3_000_000}) ||
		r.Incoming[1] != (client.GatekeeperStatus{Worker: hexD4, Backing: 4_250_000, Confirmed: true}) {
		t.Errorf("incoming %+v", r.Incoming)
	}
	want := []client.HeartbeatStatus{
		{Worker: hexA1, Role: "gatekeeper", Heartbeats: 10},
		{Worker: hexB2, Role: "gatekeeper", Heartbeats: 2, Unresponsive: true, Slashed: 2_500_000},
		{Worker: hexE5, Role: "miner", Heartbeats: 9},
	}
	if rs := st.Responsiveness; rs == nil || rs.Era != 1 || rs.Windows != 10 || rs.MaxGatekeeper != 10 || rs.MaxMiner != 9 || len(rs.Workers) != len(want) {
		t.Errorf("responsiveness %+v", rs)
	} else {
		for i := range want {
			if rs.Workers[i] != want[i] {
				t.Errorf("judged worker %d: %+v, want %+v", i, rs.Workers[i], want[i])
			}
		}
	}
	// The wire names, which scripts read.
	for _, key := range []string{`"era": {`, `"since_height": 200`, `"expired_attempts": 1`, `"root_public_key": "` + hex.EncodeToString(rootKey),
		`"rotation": {`, `"key_distributed": true`, `"parts_received": 2`, `"keys_expected": 100`, `"confirmations": 1`, `"incoming": [`,
		`"responsiveness": {`, `"role": "miner"`, `"heartbeats": 2`, `"unresponsive": true`, `"slashed": 2500000`} {
		if !strings.Contains(raw, key) {
			t.Errorf("no %s in %s", key, raw)
		}
	}

	// Both shares in, the new root key not yet distributed.
	es := eraState()
	es.Rotation.RootPublicKey, es.Rotation.KeysHeight = nil, 0
	f.set(es, report())
	raw = runStatus(t, node, "-o", "json")
	st = client.Status{}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if r := st.Era.Rotation; r == nil || r.KeyDistributed || r.RootPublicKey != "" || r.KeysHeight != 0 || r.SharesHeight != 305 ||
		!strings.Contains(raw, `"key_distributed": false`) || strings.Contains(raw, hex.EncodeToString(newRootKey)) {
		t.Errorf("key not distributed: %s", raw)
	}

	// No rotation: the era without one.
	es = eraState()
	es.Rotation = nil
	f.set(es, nil)
	top := statusJSON(t, runStatus(t, node, "-o", "json"))
	var era map[string]json.RawMessage
	if err := json.Unmarshal(top["era"], &era); err != nil {
		t.Fatalf("era: %v", err)
	}
	if _, ok := era["rotation"]; ok {
		t.Errorf("rotation without one in progress: %s", top["era"])
	}
	if _, ok := top["responsiveness"]; ok {
		t.Errorf("responsiveness without a report: %s", top["responsiveness"])
	}

	// Before the launch: neither.
	f.set(nil, nil)
	top = statusJSON(t, runStatus(t, node, "-o", "json"))
	for _, k := range []string{"era", "responsiveness"} {
		if _, ok := top[k]; ok {
			t.Errorf("%s before the launch: %s", k, top[k])
		}
	}
	if _, ok := top["workers"]; !ok {
		t.Errorf("status without eras lost its workers: %v", top)
	}
}

func statusJSON(t *testing.T, raw string) map[string]json.RawMessage {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return top
}
