package devnet_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/pruntime"
)

// launchWithTTL starts a devnet with its workers, registrations lasting ttl
// seconds and the launch tuned by p (zero: the default), and waits for the
// launch.
func launchWithTTL(t *testing.T, ctx context.Context, ttl int64, p gatekeeper.Params) *devnet.Network {
	t.Helper()
	return launched(t, ctx, p, func(g *chain.Genesis) { g.Registry.Params.RegistrationTTL = ttl })
}

// TestWorkersRenewIdentityBeforeExpiry: with registrations lasting 30 s,
// every host renews its worker's identity before it expires. Each new
// identity is registered as the successor of the old (a fresh attestation
// signed by the old key), the gatekeepers keep their seats and the root key
// under their new identities, bonds follow, the old keys are erased, and
// the workers stay active after the old registrations' expiry.
func TestWorkersRenewIdentityBeforeExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	net := launchWithTTL(t, ctx, 30, gatekeeper.Params{})
	first := map[string][]byte{}
	for name, rt := range net.Workers.Runtimes {
		if name != "genesis" {
			first[name] = rt.Info().SigningKey
		}
	}
	// Each worker renews once its registration has under a quarter of
	// its 30 s left, and the chain registers the successor.
	renewed := map[string][]byte{}
	deadline := time.Now().Add(90 * time.Second)
	for len(renewed) < len(first) {
		if time.Now().After(deadline) {
			t.Fatalf("renewed %d of %d workers within 90 s", len(renewed), len(first))
		}
		for name, old := range first {
			in := net.Workers.Runtimes[name].Info()
			if renewed[name] != nil || bytes.Equal(in.SigningKey, old) || in.RenewalPending {
				continue
			}
			w, err := net.Client.Worker(ctx, in.SigningKey)
			if err != nil || w == nil {
				continue
			}
			if !bytes.Equal(w.Predecessor, old) {
				t.Fatalf("%s: new identity %X names predecessor %X, want %X", name, in.SigningKey, w.Predecessor, old)
			}
			prev, err := net.Client.Worker(ctx, old)
			if err != nil || !bytes.Equal(prev.GetSuccessor(), in.SigningKey) {
				t.Fatalf("%s: old record %+v %v", name, prev, err)
			}
			renewed[name] = in.SigningKey
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The gatekeepers hold their seats and the root key as their new
	// identities; bonds moved with them.
	st, err := net.Client.Launch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seats := map[string]bool{}
	for _, g := range st.Elected {
		seats[string(g.SigningKey)] = true
	}
	for name, key := range renewed {
		in := net.Workers.Runtimes[name].Info()
		if in.Role == pruntime.RoleGatekeeper {
			if !in.HoldsRootKey || !seats[string(key)] && !seats[string(in.SigningKey)] {
				t.Errorf("%s: gatekeeper renewed to %X, but seats are %v and it holds the root key: %v", name, key, st.Elected, in.HoldsRootKey)
			}
			if s, err := net.Client.SelfStake(ctx, in.SigningKey); err != nil || s != devnet.CandidateStake {
				t.Errorf("%s: bond on the new identity %d %v", name, s, err)
			}
		}
		if seats[string(first[name])] {
			t.Errorf("%s: the old identity %X still holds a gatekeeper seat", name, first[name])
		}
	}
	// Past the first registrations' expiry the workers still act: every
	// current identity is registered and unexpired at the chain's time.
	var lastExpiry int64
	for _, old := range first {
		w, _ := net.Client.Worker(ctx, old)
		lastExpiry = max(lastExpiry, w.GetExpiresAt())
	}
	for {
		s, err := net.Client.Status(ctx)
		if err == nil && s.BlockTime.Unix() > lastExpiry {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the chain did not pass the old expiry")
		case <-time.After(200 * time.Millisecond):
		}
	}
	s, _ := net.Client.Status(ctx)
	for name := range first {
		key := net.Workers.Runtimes[name].Info().SigningKey
		w, err := net.Client.Worker(ctx, key)
		if err != nil || w == nil || w.Retired || len(w.Successor) > 0 || w.ExpiresAt <= s.BlockTime.Unix() {
			t.Errorf("%s: current identity %X on chain: %+v %v", name, key, w, err)
		}
	}
	t.Logf("renewed %d workers; chain time %s is past the old expiry %s", len(renewed), s.BlockTime.UTC(), time.Unix(lastExpiry, 0).UTC())
}

// TestRenewalsAcrossTheLaunch: registrations last 10 s and the election
// waits for block 55, so workers renew before the election (their
// successors stand with the moved bonds and are elected) and again after
// the launch (the seats move). In the end every gatekeeper seat is held by
// the current identity of a worker whose pRuntime holds the root key, and
// every worker has renewed twice.
func TestRenewalsAcrossTheLaunch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	net := launchWithTTL(t, ctx, 10, gatekeeper.Params{NGatekeepers: 3, ElectionHeight: 55, HandoverBlocks: 30})
	var last error
	for {
		last = func() error {
			st, err := net.Client.Launch(ctx)
			if err != nil {
				return err
			}
			holders := map[string]string{}
			for name, rt := range net.Workers.Runtimes {
				in := rt.Info()
				if name == "genesis" {
					continue
				}
				w, err := net.Client.Worker(ctx, in.SigningKey)
				if err != nil || w == nil {
					return fmt.Errorf("%s: current identity not registered yet (%v)", name, err)
				}
				if len(w.Predecessor) == 0 {
					return fmt.Errorf("%s has not renewed yet", name)
				}
				if p, err := net.Client.Worker(ctx, w.Predecessor); err != nil || len(p.GetPredecessor()) == 0 {
					return fmt.Errorf("%s has renewed once, not twice (%v)", name, err)
				}
				if in.HoldsRootKey {
					holders[string(in.SigningKey)] = name
				}
			}
			for _, g := range st.Elected {
				if holders[string(g.SigningKey)] == "" {
					return fmt.Errorf("seat %X is not held by a current identity holding the root key", g.SigningKey)
				}
			}
			return nil
		}()
		if last == nil {
			if testing.Verbose() {
				st, _ := net.Client.Status(ctx)
				t.Logf("at height %d every worker renewed twice and every seat is held", st.Height)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after the launch: %v", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
