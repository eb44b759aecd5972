package pruntime

import (
	"bytes"
	"errors"
	"testing"

	"github.com/phala-go/phala/tee/sim"
)

// TestRenewWaitsForOutbox: a renewal with signed messages still undelivered
// is refused and changes nothing; the chain would take them from neither
// the renewed identity nor the new one.
func TestRenewWaitsForOutbox(t *testing.T) {
	cpu, _ := sim.OpenCPU(t.TempDir())
	r, err := New(Config{Platform: sim.New(cpu, sim.Measure([]byte("b"))), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InitRuntime([]byte(`{"genesis_time":"2026-01-01T00:00:00Z","chain_id":"a","initial_height":"1","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"mV8U0C1M1Xp6D2E4gVNR2wA0U6gmxuWbEFIWnkv4ni0="},"power":"10","name":"v"}],"app_state":{}}`)); err != nil {
		t.Fatal(err)
	}
	before := r.Info().SigningKey
	r.st.Outbox = [][]byte{{1}}
	if _, err := r.RenewIdentity(); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("renewal with a pending message: %v", err)
	}
	if in := r.Info(); !bytes.Equal(in.SigningKey, before) || in.RenewalPending || r.st.PrevIdentitySeed != nil {
		t.Fatalf("a refused renewal changed the identity: %v", in)
	}
	r.st.Outbox = nil
	if id, err := r.RenewIdentity(); err != nil || bytes.Equal(id.SigningKey, before) {
		t.Fatalf("renewal once delivered: %v %v", id, err)
	}
}
