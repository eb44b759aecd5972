// Package host is the untrusted program beside a pRuntime. It registers its
// pRuntime on chain (identity, quote, attestation service, registration
// transaction), feeds it the chain's blocks for verified sync, and relays
// the signed messages pRuntime produces as transactions paid by the
// operator. It can delay or drop what it relays, never forge it: pRuntime
// verifies every block and signs every message itself.
package host

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/phala-go/phala/attest"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime/lightclient"
)

// Config configures a Host. Zero fields take defaults.
type Config struct {
	// PRuntime is the pRuntime API. Required.
	PRuntime pruntimepb.PRuntimeClient
	// Chain is a node's RPC client. Required.
	Chain *client.Client
	// Attest is the remote attestation service. Required unless the
	// pRuntime is the genesis worker (registered by the genesis file).
	Attest *attest.Client
	// Operator signs and pays for the host's transactions. Required.
	Operator ed25519.PrivateKey
	// Genesis is the chain's genesis.json, given to pRuntime once. Required.
	Genesis []byte
	// Endpoint is where users reach this worker; it is attested.
	Endpoint string
	// Stake, in uPHA, is bonded to the worker after registration to stand
	// as a gatekeeper candidate; 0 runs a miner that does not stand.
	Stake uint64
	// RenewBefore is how long before its registration expires the host
	// renews the worker's identity (a new identity with a fresh attestation
	// that succeeds the old one on chain). Default: a quarter of the
	// registration's lifetime.
	RenewBefore time.Duration
	// Batch is the most blocks sent to pRuntime per call. Default 500.
	Batch int
	// Poll is the pause when there is nothing to do. Default 200 ms.
	Poll time.Duration
	// QueryListen is a loopback host:port where users' sealed contract
	// queries are served over HTTP (see QueryHandler) while Run runs;
	// empty serves none.
	QueryListen string
	// Logger receives logs. Default: discard.
	Logger *slog.Logger
}

// Host runs one worker's relay.
type Host struct {
	cfg      Config
	log      *slog.Logger
	key      []byte // pRuntime's identity key
	lastVals []byte // validators hash of the last header pRuntime accepted from us
	sentAt   map[uint64]time.Time
	// bondedAt is when the bond was last found complete; it is checked
	// again every bondCheck, so a slashed bond is topped up.
	bondedAt time.Time
	// renewWait is why a due renewal last waited (logged once per reason).
	renewWait string
	// retryAt delays the next renewal or bond attempt after a failure.
	retryAt time.Time
}

// New checks cfg.
func New(cfg Config) (*Host, error) {
	if cfg.PRuntime == nil || cfg.Chain == nil || cfg.Operator == nil || cfg.Genesis == nil {
		return nil, errors.New("host: Config.PRuntime, Chain, Operator and Genesis are required")
	}
	if cfg.QueryListen != "" {
		if err := checkQueryListen(cfg.QueryListen); err != nil {
			return nil, err
		}
	}
	if cfg.Batch == 0 {
		cfg.Batch = 500
	}
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Host{cfg: cfg, log: cfg.Logger, sentAt: map[uint64]time.Time{}}, nil
}

// Run relays until ctx ends. Transient failures (a node restarting, an
// attestation service down) are logged and retried; it returns only when
// ctx ends or pRuntime refuses to run at all. With Config.QueryListen
// set it serves queries meanwhile; it fails at once if it cannot listen.
func (h *Host) Run(ctx context.Context) error {
	if h.cfg.QueryListen != "" {
		stop, err := h.serveQueries()
		if err != nil {
			return err
		}
		defer stop()
	}
	for {
		busy, err := h.Step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			h.log.Warn("host step failed; retrying", "err", err)
			busy = false
		}
		if !busy {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(h.cfg.Poll):
			}
		}
	}
}

// Step does one round of work: initialise, register, sync a batch, relay
// side effects. busy reports whether more work is waiting.
func (h *Host) Step(ctx context.Context) (busy bool, err error) {
	info, err := h.cfg.PRuntime.Info(ctx, &pruntimepb.InfoRequest{})
	if err != nil {
		return false, fmt.Errorf("pRuntime info: %w", err)
	}
	if info.Role == "retired" {
		return false, nil
	}
	if !info.Initialized {
		if info, err = h.cfg.PRuntime.InitRuntime(ctx, &pruntimepb.InitRuntimeRequest{Genesis: h.cfg.Genesis}); err != nil {
			return false, fmt.Errorf("initialise pRuntime: %w", err)
		}
	}
	if !bytes.Equal(info.SigningKey, h.key) { // first step, or a renewal took effect
		h.key, h.bondedAt = info.SigningKey, time.Time{}
		clear(h.sentAt)
	}
	st, err := h.cfg.Chain.RPC().Status(ctx)
	if err != nil {
		return false, err
	}
	if info.Role != "genesis" {
		registered, err := h.register(ctx, info, st.SyncInfo.LatestBlockTime)
		if err != nil && !registered {
			return false, err
		}
		if err != nil {
			// A registered worker keeps syncing and relaying while its
			// renewal or bond is retried: a gatekeeper must not go deaf.
			h.log.Warn("worker upkeep failed; retrying later", "err", err)
			h.retryAt = time.Now().Add(retryPause)
		}
	}
	busy, err = h.sync(ctx, info.Height, st.SyncInfo.LatestBlockHeight)
	if err != nil {
		return false, err
	}
	if len(info.Recovering) > 0 {
		// Recover against the height pRuntime trusts now (after the sync).
		if info, err = h.cfg.PRuntime.Info(ctx, &pruntimepb.InfoRequest{}); err != nil {
			return false, err
		}
		more, err := h.recoverContracts(ctx, info)
		if err != nil {
			h.log.Warn("contract recovery step failed; retrying", "err", err)
		}
		busy = busy || more
	}
	return busy, h.relay(ctx)
}

// retryPause spaces out retries of a failed renewal or bond, each of which
// may cost an attestation.
const retryPause = 5 * time.Second

// register registers the pRuntime's identity if the chain does not know it
// yet; for a registered one it renews the identity when the registration
// nears its expiry at block time now, and bonds the configured stake. It
// reports whether the current identity is registered.
func (h *Host) register(ctx context.Context, info *pruntimepb.InfoResponse, now time.Time) (bool, error) {
	w, err := h.cfg.Chain.Worker(ctx, h.key)
	if err != nil {
		return false, err
	}
	if w == nil {
		return false, h.submitRegistration(ctx)
	}
	if time.Now().Before(h.retryAt) {
		return true, nil
	}
	if info.RenewalPending || h.renewDue(w, now) {
		if err := h.renew(ctx, info, w); err != nil {
			return true, err
		}
	}
	return true, h.bond(ctx)
}

// submitRegistration quotes pRuntime's registration info (its identity, or
// during a renewal its successor), has the attestation service vouch for
// the quote, and registers it on chain, paid by the operator.
func (h *Host) submitRegistration(ctx context.Context) error {
	if h.cfg.Attest == nil {
		return errors.New("pRuntime is not registered and no attestation service is configured")
	}
	op := crypto.AddressFromPubKey(h.cfg.Operator.Public().(ed25519.PublicKey))
	q, err := h.cfg.PRuntime.GetRAQuote(ctx, &pruntimepb.GetRAQuoteRequest{Operator: op[:], Endpoint: h.cfg.Endpoint})
	if err != nil {
		return fmt.Errorf("pRuntime quote: %w", err)
	}
	ev, err := h.cfg.Attest.Report(ctx, q.Quote)
	if err != nil {
		return fmt.Errorf("attestation service: %w", err)
	}
	msg := &chainpb.MsgRegisterWorker{Info: q.Info, Platform: q.Platform, Evidence: ev, PredecessorSignature: q.PredecessorSignature}
	if _, err := h.cfg.Chain.Send(ctx, h.cfg.Operator, &chainpb.TxBody{Msg: &chainpb.TxBody_RegisterWorker{RegisterWorker: msg}}, client.SendOptions{}); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	h.log.Info("registered the worker", "info", fmt.Sprintf("%X", crypto.WorkerReportData(q.Info)), "renewal", len(q.PredecessorSignature) > 0, "measurement", fmt.Sprintf("%X", q.Measurement))
	return nil
}

// bondCheck is how often a complete bond is checked again.
const bondCheck = time.Minute

// bond bonds the configured stake to the current identity, topping up only
// what is missing: after a renewal (which moves the bond) nothing, after a
// slash the part taken.
func (h *Host) bond(ctx context.Context) error {
	if h.cfg.Stake == 0 || time.Since(h.bondedAt) < bondCheck {
		return nil
	}
	s, err := h.cfg.Chain.SelfStake(ctx, h.key)
	if err != nil {
		return err
	}
	if s < h.cfg.Stake {
		body := &chainpb.TxBody{Msg: &chainpb.TxBody_Stake{Stake: &chainpb.MsgStake{Worker: h.key, Amount: int64(h.cfg.Stake - s)}}}
		if _, err := h.cfg.Chain.Send(ctx, h.cfg.Operator, body, client.SendOptions{}); err != nil {
			return fmt.Errorf("stake: %w", err)
		}
		h.log.Info("bonded stake to the worker", "amount", h.cfg.Stake-s)
	}
	h.bondedAt = time.Now()
	return nil
}

// renewDue reports whether w's registration is close enough to its expiry
// (or past it) at block time now to renew.
func (h *Host) renewDue(w *chainpb.Worker, now time.Time) bool {
	if w.Genesis || w.Retired || w.ExpiresAt == 0 || len(w.Successor) > 0 {
		return false
	}
	before := h.cfg.RenewBefore
	if before == 0 {
		before = time.Duration(w.ExpiresAt-w.RegisteredAt) * time.Second / 4
	}
	return !now.Before(time.Unix(w.ExpiresAt, 0).Add(-before))
}

// renew has pRuntime prepare a successor identity (once) and registers it
// as w's successor. pRuntime switches to it when it syncs the block with
// the registration. It waits while w is elected in an open launch round:
// the root key is being sealed to w's keys and the chain would refuse.
func (h *Host) renew(ctx context.Context, info *pruntimepb.InfoResponse, w *chainpb.Worker) error {
	if len(info.NextSigningKey) > 0 {
		if nw, err := h.cfg.Chain.Worker(ctx, info.NextSigningKey); err != nil || nw != nil {
			return err // registered: pRuntime switches once it syncs that block
		}
	}
	if st, err := h.cfg.Chain.Launch(ctx); err != nil {
		return err
	} else if st != nil && st.Phase != "launched" {
		for _, g := range st.Elected {
			if bytes.Equal(g.SigningKey, w.SigningKey) {
				h.waitRenewal(fmt.Sprintf("launch round %d, in which this worker is elected, to end", st.Round))
				return nil
			}
		}
	}
	if len(info.NextSigningKey) == 0 {
		id, err := h.cfg.PRuntime.RenewIdentity(ctx, &pruntimepb.RenewIdentityRequest{})
		if err != nil {
			return fmt.Errorf("renew the pRuntime identity: %w", err)
		}
		h.log.Info("renewing the worker identity before its registration expires", "identity", fmt.Sprintf("%X", w.SigningKey), "successor", fmt.Sprintf("%X", id.SigningKey), "expires", time.Unix(w.ExpiresAt, 0).UTC())
	}
	h.renewWait = ""
	return h.submitRegistration(ctx)
}

// waitRenewal logs why a due renewal waits, once per reason.
func (h *Host) waitRenewal(why string) {
	if why != h.renewWait {
		h.log.Info("identity renewal is due; waiting for "+why, "worker", fmt.Sprintf("%X", h.key))
		h.renewWait = why
	}
}

// sync feeds pRuntime the blocks after its height, up to the chain's tip.
func (h *Host) sync(ctx context.Context, from, tip int64) (busy bool, err error) {
	if from >= tip {
		return false, nil
	}
	end := min(tip, from+int64(h.cfg.Batch))
	var blocks []*pruntimepb.SyncBlock
	for ht := from + 1; ht <= end; ht++ {
		// Send the validator set when it may have changed (or we do not
		// know what pRuntime last saw); pRuntime checks it either way.
		b, err := h.cfg.Chain.SyncBlock(ctx, ht, h.lastVals == nil)
		if err != nil {
			return false, err
		}
		if b.Validators == nil && !bytes.Equal(b.SignedHeader.ValidatorsHash, h.lastVals) {
			if b.Validators, err = h.cfg.Chain.ValidatorSet(ctx, ht); err != nil {
				return false, err
			}
		}
		sb, err := lightclient.EncodeBlock(b)
		if err != nil {
			return false, err
		}
		blocks = append(blocks, sb)
		h.lastVals = b.SignedHeader.ValidatorsHash
	}
	res, err := h.cfg.PRuntime.SyncBlockchain(ctx, &pruntimepb.SyncRequest{Blocks: blocks})
	if err != nil {
		h.lastVals = nil
		return false, fmt.Errorf("pRuntime refused blocks %d..%d: %w", from+1, end, err)
	}
	return res.Height < tip, nil
}

// resend is how long a relayed message may stay unseen before it is sent
// again (it may have been dropped from a mempool).
const resend = 10 * time.Second

// relay submits pRuntime's signed messages the chain does not have yet, in
// sequence order, paid by the operator.
func (h *Host) relay(ctx context.Context) error {
	fx, err := h.cfg.PRuntime.DumpSideEffects(ctx, &pruntimepb.DumpSideEffectsRequest{})
	if err != nil || len(fx.Messages) == 0 {
		return err
	}
	next, err := h.cfg.Chain.NextSequence(ctx, h.key)
	if err != nil {
		return err
	}
	for seq := range h.sentAt {
		if seq < next {
			delete(h.sentAt, seq)
		}
	}
	for _, m := range fx.Messages {
		if m.Sequence < next {
			continue // delivered; pRuntime drops it once it syncs that block
		}
		if t, ok := h.sentAt[m.Sequence]; ok && time.Since(t) < resend {
			continue
		}
		body := &chainpb.TxBody{Msg: &chainpb.TxBody_SubmitMessage{SubmitMessage: &chainpb.MsgSubmitMessage{Message: m}}}
		_, err := h.cfg.Chain.Send(ctx, h.cfg.Operator, body, client.SendOptions{})
		if err != nil && !errors.Is(err, mq.ErrSequenceReused) {
			return fmt.Errorf("relay message %d: %w", m.Sequence, err)
		}
		h.sentAt[m.Sequence] = time.Now()
		h.log.Info("relayed a signed message", "sequence", m.Sequence)
	}
	return nil
}
