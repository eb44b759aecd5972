package monitor

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/internal/liveness"
	"github.com/phala-go/phala/proto/chainpb"
)

var (
	paramsKey = []byte("monitor/params")
	reportKey = []byte("monitor/report") // the last era's judgement
)

func countKey(w []byte) []byte        { return append([]byte("monitor/c/"), w...) }
func unresponsiveKey(w []byte) []byte { return append([]byte("monitor/unresponsive/"), w...) }

// counter is a worker's heartbeat count in one era.
type counter struct {
	Era    uint64 `json:"era"`
	Count  int64  `json:"count"`
	Window int64  `json:"window"` // the last interval counted
}

// InitGenesis writes the parameters.
func InitGenesis(kv store.KV, p Params) error {
	return store.SetJSON(kv, paramsKey, p)
}

// LoadParams reads the monitor's parameters.
func LoadParams(r store.Reader) (Params, error) {
	return store.LoadJSON[Params](r, paramsKey, "monitor parameters")
}

// EraOf is the era block height belongs to (0 without eras).
func EraOf(height, eraBlocks int64) uint64 {
	if eraBlocks <= 0 || height <= 0 {
		return 0
	}
	return uint64((height - 1) / eraBlocks)
}

// Heartbeat counts a worker's heartbeat delivered at block now, once per
// interval and only while fresh; note says why one does not count.
func Heartbeat(kv store.KV, worker []byte, hb *chainpb.Heartbeat, now, eraBlocks int64) (note string, err error) {
	p, err := LoadParams(kv)
	if err != nil {
		return "", err
	}
	if !liveness.Fresh(hb.Height, now, p.HeartbeatBlocks) {
		return fmt.Sprintf("heartbeat for block %d is not fresh at block %d (interval %d): the pRuntime lags or the host held it back", hb.Height, now, p.HeartbeatBlocks), nil
	}
	era, window := EraOf(hb.Height, eraBlocks), hb.Height/p.HeartbeatBlocks
	c, err := loadCounter(kv, worker)
	if err != nil {
		return "", err
	}
	if c.Era != era {
		c = counter{Era: era}
	}
	if window <= c.Window {
		return "a heartbeat of this interval was already counted", nil
	}
	c.Count, c.Window = c.Count+1, window
	return "", store.SetJSON(kv, countKey(worker), c)
}

func loadCounter(r store.Reader, w []byte) (counter, error) {
	var c counter
	b, err := r.Get(countKey(w))
	if err != nil || b == nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// Count is worker's heartbeat count in era.
func Count(r store.Reader, worker []byte, era uint64) (int64, error) {
	c, err := loadCounter(r, worker)
	if err != nil || c.Era != era {
		return 0, err
	}
	return c.Count, nil
}

// Unresponsive reports whether worker was found unresponsive as a miner
// and has not been responsive for a whole era since.
func Unresponsive(r store.Reader, worker []byte) (bool, error) {
	v, err := r.Get(unresponsiveKey(worker))
	return v != nil, err
}

// Hooks are what the era's judgement needs from other modules.
type Hooks struct {
	// Workers lists every registered worker.
	Workers func() ([]*chainpb.Worker, error)
	// Gatekeepers are the seated gatekeepers.
	Gatekeepers func() ([][]byte, error)
	// Miner reports whether a worker stands as a miner (active, bonded,
	// not a gatekeeper, not the genesis worker), unresponsiveness aside.
	Miner func(w *chainpb.Worker) (bool, error)
	// SlashMiner and SlashGatekeeper slash an unresponsive worker and
	// return the amount taken; ExcludeGatekeeper bars it from the next
	// election.
	SlashMiner        func(w []byte) (uint64, error)
	SlashGatekeeper   func(w []byte) (uint64, error)
	ExcludeGatekeeper func(w []byte) error
}

// EndEra judges era at its last block: per role, a worker registered since
// before the era started is unresponsive when 4·c_n < max c_n'. It slashes
// the unresponsive, bars unresponsive miners from contracts (and clears
// the bar of responsive ones), and keeps the report.
func EndEra(kv store.KV, era uint64, eraBlocks int64, h Hooks) (*Report, error) {
	p, err := LoadParams(kv)
	if err != nil {
		return nil, err
	}
	start := int64(era)*eraBlocks + 1
	rep := &Report{Era: era, Windows: eraBlocks / p.HeartbeatBlocks, Counts: map[string]int64{}, Unresponsive: map[string]uint64{}}
	gks, err := h.Gatekeepers()
	if err != nil {
		return nil, err
	}
	seated := map[string]bool{}
	for _, g := range gks {
		seated[string(g)] = true
	}
	ws, err := h.Workers()
	if err != nil {
		return nil, err
	}
	var miners, gatekeepers [][]byte
	for _, w := range ws {
		if w.RegisteredHeight >= start {
			continue // not connected for the whole era
		}
		if seated[string(w.SigningKey)] {
			gatekeepers = append(gatekeepers, w.SigningKey)
			continue
		}
		if ok, err := h.Miner(w); err != nil {
			return nil, err
		} else if ok {
			miners = append(miners, w.SigningKey)
		}
	}
	judge := func(group [][]byte, max *int64, names *[]string) ([][]byte, error) {
		counts := make([]int64, len(group))
		for i, w := range group {
			c, err := Count(kv, w, era)
			if err != nil {
				return nil, err
			}
			counts[i] = c
			rep.Counts[hex.EncodeToString(w)] = c
			*names = append(*names, hex.EncodeToString(w))
			*max = maxInt(*max, c)
		}
		var late [][]byte
		for i, w := range group {
			if 4*counts[i] < *max {
				late = append(late, w)
			}
		}
		return late, nil
	}
	lateMiners, err := judge(miners, &rep.MaxMiner, &rep.Miners)
	if err != nil {
		return nil, err
	}
	lateGks, err := judge(gatekeepers, &rep.MaxGatekeeper, &rep.Gatekeepers)
	if err != nil {
		return nil, err
	}
	for _, w := range miners {
		if err := kv.Delete(unresponsiveKey(w)); err != nil {
			return nil, err
		}
	}
	for _, w := range lateMiners {
		cut, err := h.SlashMiner(w)
		if err != nil {
			return nil, err
		}
		rep.Unresponsive[hex.EncodeToString(w)] = cut
		if err := store.SetUint64(kv, unresponsiveKey(w), era); err != nil {
			return nil, err
		}
	}
	for _, w := range lateGks {
		cut, err := h.SlashGatekeeper(w)
		if err != nil {
			return nil, err
		}
		rep.Unresponsive[hex.EncodeToString(w)] = cut
		if err := h.ExcludeGatekeeper(w); err != nil {
			return nil, err
		}
	}
	return rep, store.SetJSON(kv, reportKey, rep)
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// LastReport is the latest era's judgement; nil before the first.
func LastReport(r store.Reader) (*Report, error) {
	b, err := r.Get(reportKey)
	if err != nil || b == nil {
		return nil, err
	}
	var rep Report
	return &rep, json.Unmarshal(b, &rep)
}
