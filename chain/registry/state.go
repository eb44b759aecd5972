package registry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/tee"
)

// State keys.
var (
	paramsKey      = []byte("registry/params")
	genesisHashKey = []byte("registry/genesis_hash")
	frozenKey      = []byte("registry/frozen")  // JSON []Frozen, by platform
	workersKey     = []byte("registry/workers") // concatenated identity keys, in registration order
)

func workerKey(signingKey []byte) []byte { return append([]byte("registry/w/"), signingKey...) }
func reportKey(id string) []byte         { return append([]byte("registry/report/"), id...) }
func measurementKey(platform string, m []byte) []byte {
	k := append([]byte("registry/m/"), platform...)
	return append(append(k, 0), m...)
}

// InitGenesis writes the registry's genesis state. genesisHash identifies the
// chain (proof.GenesisHash); registrations must commit to it.
func InitGenesis(kv store.KV, g Genesis, genesisHash []byte, genesisTime time.Time) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if err := SetParams(kv, g.Params); err != nil {
		return err
	}
	if err := kv.Set(genesisHashKey, genesisHash); err != nil {
		return err
	}
	for _, m := range g.Measurements {
		raw, _ := hex.DecodeString(m.Measurement)
		if err := kv.Set(measurementKey(m.Platform, raw), []byte{1}); err != nil {
			return err
		}
	}
	if gw := g.GenesisWorker; gw != nil {
		w := &chainpb.Worker{SigningKey: gw.SigningKey, HpkeKey: gw.HPKEKey, Endpoint: gw.Endpoint, Platform: "genesis", Genesis: true, RegisteredAt: genesisTime.Unix()}
		return putWorker(kv, w, true)
	}
	return nil
}

// Validate checks the genesis state.
func (g Genesis) Validate() error {
	if err := g.Params.Validate(); err != nil {
		return err
	}
	for i, m := range g.Measurements {
		raw, err := hex.DecodeString(m.Measurement)
		if err != nil || len(raw) == 0 || len(raw) > MaxMeasurementBytes || m.Platform == "" {
			return fmt.Errorf("registry measurement %d: want a platform and 1 to %d hex bytes, got %q %q", i, MaxMeasurementBytes, m.Platform, m.Measurement)
		}
	}
	if gw := g.GenesisWorker; gw != nil {
		if err := checkKeys(gw.SigningKey, gw.HPKEKey); err != nil {
			return fmt.Errorf("registry genesis_worker: %w", err)
		}
	}
	return nil
}

func checkKeys(signing, hpkeKey []byte) error {
	if len(signing) != ed25519.PublicKeySize || crypto.IsSmallOrderKey(signing) {
		return ErrMalformed.Wrapf("signing key must be a %d-byte ed25519 key of full order, got %d bytes", ed25519.PublicKeySize, len(signing))
	}
	if _, err := crypto.ParseHPKEPublicKey(hpkeKey); err != nil {
		return ErrMalformed.Wrapf("HPKE key: %v", err)
	}
	return nil
}

// SetParams validates and writes the parameters (at genesis, and when a
// param_change referendum for module "registry" passes). They apply to
// registrations from then on; a registration keeps the expiry it got.
func SetParams(kv store.KV, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return store.SetJSON(kv, paramsKey, p)
}

// LoadParams reads the registry's parameters.
func LoadParams(r store.Reader) (Params, error) {
	return store.LoadJSON[Params](r, paramsKey, "registry parameters")
}

// GenesisHash is the chain's genesis hash registrations commit to.
func GenesisHash(r store.Reader) ([]byte, error) { return r.Get(genesisHashKey) }

func (p Params) ServiceKeys() ([]ed25519.PublicKey, error) {
	keys := make([]ed25519.PublicKey, 0, len(p.AttestationServices))
	for i, s := range p.AttestationServices {
		k, err := hex.DecodeString(s)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("registry attestation_services[%d] %q: want a hex ed25519 public key", i, s)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Verifiers builds the chain-side verifier of a platform from the
// parameters. It is the one place a platform is wired in.
type Verifiers func(p Params, platform string) (tee.Verifier, error)

// Worker reads a registered worker, or nil.
func Worker(r store.Reader, signingKey []byte) (*chainpb.Worker, error) {
	b, err := r.Get(workerKey(signingKey))
	if err != nil || b == nil {
		return nil, err
	}
	var w chainpb.Worker
	if err := proto.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("worker record %X is corrupt: %w", signingKey, err)
	}
	return &w, nil
}

// Workers lists every worker ever registered, in registration order.
func Workers(r store.Reader) ([]*chainpb.Worker, error) {
	idx, err := r.Get(workersKey)
	if err != nil {
		return nil, err
	}
	out := make([]*chainpb.Worker, 0, len(idx)/ed25519.PublicKeySize)
	for i := 0; i+ed25519.PublicKeySize <= len(idx); i += ed25519.PublicKeySize {
		w, err := Worker(r, idx[i:i+ed25519.PublicKeySize])
		if err != nil {
			return nil, err
		}
		if w != nil {
			out = append(out, w)
		}
	}
	return out, nil
}

func putWorker(kv store.KV, w *chainpb.Worker, isNew bool) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
	if err != nil {
		return err
	}
	if err := kv.Set(workerKey(w.SigningKey), b); err != nil {
		return err
	}
	if !isNew {
		return nil
	}
	idx, err := kv.Get(workersKey)
	if err != nil {
		return err
	}
	return kv.Set(workersKey, append(bytes.Clone(idx), w.SigningKey...))
}

// Active returns the worker if it may act at block time now: registered,
// not retired, not expired.
func Active(r store.Reader, signingKey []byte, now time.Time) (*chainpb.Worker, error) {
	w, err := Worker(r, signingKey)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, ErrUnknownWorker.Wrapf("no worker has identity key %X", signingKey)
	}
	if w.Retired {
		return nil, ErrRetired.Wrapf("worker %X retired; it may not send messages", signingKey)
	}
	if len(w.Successor) > 0 {
		return nil, ErrRenewed.Wrapf("worker %X renewed its identity; its successor %X acts for it", signingKey, w.Successor)
	}
	if IsExpired(w, now) {
		return nil, ErrExpired.Wrapf("worker %X expired at %s; register a new identity with a fresh attestation", signingKey, time.Unix(w.ExpiresAt, 0).UTC().Format(time.RFC3339))
	}
	return w, nil
}

// IsExpired reports whether w's registration has lapsed at now.
func IsExpired(w *chainpb.Worker, now time.Time) bool {
	return w.ExpiresAt != 0 && now.Unix() >= w.ExpiresAt
}

// Retire marks a worker retired for good and announces it.
func Retire(kv store.KV, log *mq.Log, signingKey []byte) error {
	w, err := Worker(kv, signingKey)
	if err != nil {
		return err
	}
	if w == nil {
		return ErrUnknownWorker.Wrapf("no worker has identity key %X", signingKey)
	}
	w.Retired = true
	if err := putWorker(kv, w, false); err != nil {
		return err
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_WorkerRetired{WorkerRetired: &chainpb.WorkerRetired{Worker: signingKey}}})
}

// ValidateRetire checks a MsgRetireWorker without state.
func ValidateRetire(m *chainpb.MsgRetireWorker) error {
	if len(m.Worker) != ed25519.PublicKeySize {
		return ErrMalformed.Wrapf("worker must be a %d-byte identity key, got %d bytes", ed25519.PublicKeySize, len(m.Worker))
	}
	return nil
}

// Deregister retires a worker at its operator's request. A worker that is
// unknown, already retired or renewed (its successor acts for it) is
// refused, as is the genesis worker (it retires at the launch).
func Deregister(kv store.KV, log *mq.Log, signer crypto.Address, m *chainpb.MsgRetireWorker) error {
	w, err := Worker(kv, m.Worker)
	if err != nil {
		return err
	}
	switch {
	case w == nil:
		return ErrUnknownWorker.Wrapf("no worker has identity key %X", m.Worker)
	case !bytes.Equal(w.Operator, signer[:]):
		return ErrNotOperator.Wrapf("worker %X is operated by another account", m.Worker)
	case w.Retired:
		return ErrRetired.Wrapf("worker %X is already retired", m.Worker)
	case len(w.Successor) > 0:
		return ErrRenewed.Wrapf("worker %X renewed its identity; retire its successor %X", m.Worker, w.Successor)
	case w.Genesis:
		return ErrMalformed.Wrapf("the genesis worker retires at the launch by itself")
	}
	return Retire(kv, log, m.Worker)
}

// MeasurementAllowed reports whether a pRuntime build is on the allowlist.
func MeasurementAllowed(r store.Reader, platform string, m []byte) (bool, error) {
	v, err := r.Get(measurementKey(platform, m))
	return v != nil, err
}

// SetMeasurement adds a pRuntime build to the allowlist (allowed) or
// removes it. A passed set_measurement referendum is its only caller: no
// account may change the allowlist by itself.
func SetMeasurement(kv store.KV, platform string, m []byte, allowed bool) error {
	if platform == "" || len(platform) > MaxPlatformBytes {
		return ErrMalformed.Wrapf("platform must be 1 to %d bytes, got %q", MaxPlatformBytes, platform)
	}
	if len(m) == 0 || len(m) > MaxMeasurementBytes {
		return ErrMalformed.Wrapf("measurement must be 1 to %d bytes, got %d", MaxMeasurementBytes, len(m))
	}
	if allowed {
		return kv.Set(measurementKey(platform, m), []byte{1})
	}
	return kv.Delete(measurementKey(platform, m))
}

// Frozen is a TEE platform whose registrations and renewals a referendum
// stopped (a freeze_platform proposal, after a vulnerability is disclosed).
type Frozen struct {
	Platform string `json:"platform"`
	// Proposal is the referendum that froze it.
	Proposal uint64 `json:"proposal"`
}

// FrozenPlatforms lists the frozen platforms, by name.
func FrozenPlatforms(r store.Reader) ([]Frozen, error) {
	b, err := r.Get(frozenKey)
	if err != nil || b == nil {
		return nil, err
	}
	var fs []Frozen
	if err := json.Unmarshal(b, &fs); err != nil {
		return nil, fmt.Errorf("registry frozen platforms are corrupt: %w", err)
	}
	return fs, nil
}

// FrozenBy is the referendum that froze platform; ok is false if it is not
// frozen.
func FrozenBy(r store.Reader, platform string) (proposal uint64, ok bool, err error) {
	fs, err := FrozenPlatforms(r)
	for _, f := range fs {
		if f.Platform == platform {
			return f.Proposal, true, err
		}
	}
	return 0, false, err
}

// SetFrozen freezes platform (recording the referendum that did) or
// unfreezes it. Workers already registered on it keep acting until their
// registration expires; none registers or renews on it while it is frozen.
func SetFrozen(kv store.KV, platform string, frozen bool, proposal uint64) error {
	if platform == "" || len(platform) > MaxPlatformBytes {
		return ErrMalformed.Wrapf("platform must be 1 to %d bytes, got %q", MaxPlatformBytes, platform)
	}
	fs, err := FrozenPlatforms(kv)
	if err != nil {
		return err
	}
	fs = slices.DeleteFunc(fs, func(f Frozen) bool { return f.Platform == platform })
	if frozen {
		fs = append(fs, Frozen{Platform: platform, Proposal: proposal})
		slices.SortFunc(fs, func(a, b Frozen) int { return strings.Compare(a.Platform, b.Platform) })
	}
	if len(fs) == 0 {
		return kv.Delete(frozenKey)
	}
	return store.SetJSON(kv, frozenKey, fs)
}

// ValidateRegister checks a MsgRegisterWorker without state and returns the
// decoded WorkerInfo.
func ValidateRegister(m *chainpb.MsgRegisterWorker) (*chainpb.WorkerInfo, error) {
	if m.Platform == "" || len(m.Platform) > MaxPlatformBytes {
		return nil, ErrMalformed.Wrapf("platform must be 1 to %d bytes, got %q", MaxPlatformBytes, m.Platform)
	}
	if len(m.Evidence) == 0 || len(m.Evidence) > MaxEvidenceBytes {
		return nil, ErrMalformed.Wrapf("evidence must be 1 to %d bytes, got %d", MaxEvidenceBytes, len(m.Evidence))
	}
	info, err := DecodeWorkerInfo(m.Info)
	if err != nil {
		return nil, err
	}
	if (len(info.Predecessor) == 0) != (len(m.PredecessorSignature) == 0) {
		return nil, ErrMalformed.Wrapf("a renewal carries both a predecessor and its signature, a first registration neither (got %d and %d bytes)", len(info.Predecessor), len(m.PredecessorSignature))
	}
	if len(m.PredecessorSignature) > 0 && len(m.PredecessorSignature) != ed25519.SignatureSize {
		return nil, ErrMalformed.Wrapf("predecessor signature must be %d bytes, got %d", ed25519.SignatureSize, len(m.PredecessorSignature))
	}
	return info, nil
}

// DecodeWorkerInfo decodes registration info strictly (strictpb): unknown
// fields, other encodings, bad key sizes and oversize endpoints are refused.
func DecodeWorkerInfo(b []byte) (*chainpb.WorkerInfo, error) {
	var info chainpb.WorkerInfo
	if err := strictpb.Decode(b, &info); err != nil {
		return nil, ErrMalformed.Wrapf("worker info: %v", err)
	}
	if err := checkKeys(info.SigningKey, info.HpkeKey); err != nil {
		return nil, err
	}
	if len(info.Operator) != crypto.AddressLen {
		return nil, ErrMalformed.Wrapf("operator must be a %d-byte address, got %d bytes", crypto.AddressLen, len(info.Operator))
	}
	if len(info.GenesisHash) != 32 {
		return nil, ErrMalformed.Wrapf("genesis hash must be 32 bytes, got %d", len(info.GenesisHash))
	}
	if len(info.Endpoint) > MaxEndpointBytes {
		return nil, ErrMalformed.Wrapf("endpoint is %d bytes, limit %d", len(info.Endpoint), MaxEndpointBytes)
	}
	if len(info.Predecessor) > 0 && len(info.Predecessor) != ed25519.PublicKeySize {
		return nil, ErrMalformed.Wrapf("predecessor must be a %d-byte identity key, got %d bytes", ed25519.PublicKeySize, len(info.Predecessor))
	}
	return &info, nil
}

// Block is the context a registration is checked in.
type Block struct {
	Height int64
	Time   time.Time
}

// Register verifies an attested registration and records the worker. info is
// m.Info decoded by ValidateRegister.
func Register(kv store.KV, log *mq.Log, verifiers Verifiers, signer crypto.Address, m *chainpb.MsgRegisterWorker, info *chainpb.WorkerInfo, blk Block) error {
	if op, _ := crypto.AddressFromBytes(info.Operator); op != signer {
		return ErrNotOperator.Wrapf("the registration names operator %s but %s signed it", op, signer)
	}
	gh, err := GenesisHash(kv)
	if err != nil {
		return err
	}
	if !bytes.Equal(gh, info.GenesisHash) {
		return ErrWrongChain.Wrapf("pRuntime was initialised with genesis %X, this chain's is %X", info.GenesisHash, gh)
	}
	// A frozen platform's evidence is not even looked at: a disclosed
	// vulnerability may let it be forged.
	if id, frozen, err := FrozenBy(kv, m.Platform); err != nil {
		return err
	} else if frozen {
		return ErrFrozen.Wrapf("registrations and renewals on %q are frozen by referendum %d; they resume when a referendum unfreezes it (`phala gov propose freeze-platform --platform %s --unfreeze`)", m.Platform, id, m.Platform)
	}
	p, err := LoadParams(kv)
	if err != nil {
		return err
	}
	v, err := verifiers(p, m.Platform)
	if err != nil {
		return ErrUnknownPlatform.Wrapf("%q: %v", m.Platform, err)
	}
	rd := crypto.WorkerReportData(m.Info)
	att, err := v.Verify(m.Evidence, rd[:], blk.Time)
	if err != nil {
		return teeError(err)
	}
	ok, err := MeasurementAllowed(kv, m.Platform, att.Measurement)
	if err != nil {
		return err
	}
	if !ok {
		return ErrMeasurement.Wrapf("%s build %X is not on the allowlist; a referendum must allow it first (`phala gov propose set-measurement --platform %s --measurement %X`)", m.Platform, att.Measurement, m.Platform, att.Measurement)
	}
	if w, err := Worker(kv, info.SigningKey); err != nil {
		return err
	} else if w != nil {
		return ErrAlreadyRegistered.Wrapf("identity %X was registered at height %d; renewal needs a new identity", info.SigningKey, w.RegisteredHeight)
	}
	var pred *chainpb.Worker
	if len(info.Predecessor) > 0 {
		if pred, err = checkRenewal(kv, m, info); err != nil {
			return err
		}
	}
	if used, err := kv.Get(reportKey(att.ReportID)); err != nil {
		return err
	} else if used != nil {
		return ErrReportReused.Wrapf("report %s", att.ReportID)
	}
	if err := kv.Set(reportKey(att.ReportID), []byte{1}); err != nil {
		return err
	}
	w := &chainpb.Worker{
		SigningKey: info.SigningKey, HpkeKey: info.HpkeKey, Operator: info.Operator, Endpoint: info.Endpoint,
		Platform: m.Platform, Measurement: att.Measurement, ReportId: att.ReportID,
		RegisteredHeight: blk.Height, RegisteredAt: blk.Time.Unix(), ExpiresAt: blk.Time.Unix() + p.RegistrationTTL,
		Predecessor: info.Predecessor,
	}
	if err := putWorker(kv, w, true); err != nil {
		return err
	}
	if pred != nil {
		pred.Successor = w.SigningKey
		if err := putWorker(kv, pred, false); err != nil {
			return err
		}
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_WorkerRegistered{WorkerRegistered: &chainpb.WorkerRegistered{Worker: w}}})
}

// checkRenewal checks that a registration may succeed info.Predecessor: a
// registered worker of the same operator, not the genesis worker, not
// retired or already renewed, whose key signed the new info. An expired
// predecessor may be renewed: its keys never left its pRuntime.
func checkRenewal(r store.Reader, m *chainpb.MsgRegisterWorker, info *chainpb.WorkerInfo) (*chainpb.Worker, error) {
	pred, err := Worker(r, info.Predecessor)
	switch {
	case err != nil:
		return nil, err
	case pred == nil:
		return nil, ErrRenewal.Wrapf("predecessor %X is not a registered worker", info.Predecessor)
	case pred.Genesis:
		return nil, ErrRenewal.Wrapf("the genesis worker retires at launch; it does not renew")
	case pred.Retired:
		return nil, ErrRenewal.Wrapf("predecessor %X retired", info.Predecessor)
	case len(pred.Successor) > 0:
		return nil, ErrRenewal.Wrapf("predecessor %X was already renewed by %X", info.Predecessor, pred.Successor)
	case !bytes.Equal(pred.Operator, info.Operator):
		return nil, ErrRenewal.Wrapf("predecessor %X is operated by another account; a renewal keeps the operator", info.Predecessor)
	case !ed25519.Verify(pred.SigningKey, crypto.RenewalBytes(m.Info), m.PredecessorSignature):
		return nil, ErrRenewal.Wrapf("the predecessor signature does not verify against %X over this registration", info.Predecessor)
	}
	return pred, nil
}

// teeError turns a platform verifier's failure into a stable code.
func teeError(err error) error {
	switch {
	case errors.Is(err, tee.ErrStale):
		return ErrStaleReport.Wrapf("%v", err)
	case errors.Is(err, tee.ErrReportData):
		return ErrReportData.Wrapf("%v", err)
	case errors.Is(err, tee.ErrStatus):
		return ErrTEEStatus.Wrapf("%v", err)
	default:
		return ErrBadEvidence.Wrapf("%v", err)
	}
}
