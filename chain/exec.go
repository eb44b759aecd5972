package chain

import (
	"encoding/hex"
	"errors"
	"strconv"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/phala-go/phala/attest"
	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/tee"
)

// validateStateless runs every check that needs no state: the message's
// own rules (a relayed worker message's signature included) and the
// minimum fee. The transaction's own signature is checked by the caller.
func validateStateless(tx *auth.Tx, p auth.Params, chainID string) error {
	var err error
	switch m := tx.Body.Msg.(type) {
	case *chainpb.TxBody_Transfer:
		err = bank.ValidateTransfer(m.Transfer)
	case *chainpb.TxBody_PushMessage:
		err = mq.ValidatePush(m.PushMessage)
	case *chainpb.TxBody_RegisterWorker:
		_, err = registry.ValidateRegister(m.RegisterWorker)
	case *chainpb.TxBody_SetMeasurement:
		err = auth.ErrUnknownMsg.Wrapf("set_measurement is retired: the pRuntime measurement allowlist changes by referendum; propose it with `phala gov propose set-measurement --platform %s --measurement %X`", m.SetMeasurement.GetPlatform(), m.SetMeasurement.GetMeasurement())
	case *chainpb.TxBody_SubmitProposal:
		err = governance.ValidateSubmit(m.SubmitProposal)
	case *chainpb.TxBody_Vote:
		err = governance.ValidateVote(m.Vote)
	case *chainpb.TxBody_SubmitMessage:
		_, err = mq.ValidateSigned(chainID, m.SubmitMessage.Message)
	case *chainpb.TxBody_Stake:
		err = staking.ValidateStake(m.Stake)
	case *chainpb.TxBody_Nominate:
		err = staking.ValidateNominate(m.Nominate)
	case *chainpb.TxBody_DeployContract:
		err = contracts.ValidateDeploy(m.DeployContract)
	case *chainpb.TxBody_ContractCommand:
		err = contracts.ValidateCommand(m.ContractCommand)
	case *chainpb.TxBody_ReassignContract:
		err = contracts.ValidateReassign(m.ReassignContract)
	case *chainpb.TxBody_RetireWorker:
		err = registry.ValidateRetire(m.RetireWorker)
	case *chainpb.TxBody_Unbond:
		err = staking.ValidateUnbond(m.Unbond)
	default:
		err = auth.ErrUnknownMsg.Wrapf("%T", m)
	}
	if err != nil {
		return err
	}
	if min := p.MinFee(tx.Size); tx.Body.Fee < min {
		return auth.ErrFeeTooLow.Wrapf("fee is %d %s, this %d-byte transaction needs at least %d", tx.Body.Fee, bank.BaseDenom, tx.Size, min)
	}
	return nil
}

// ante checks the signer's nonce and charges the fee. It writes nothing
// unless it succeeds.
func ante(kv store.KV, tx *auth.Tx) error {
	next, known, err := auth.Nonce(kv, tx.Signer)
	if err != nil {
		return err
	}
	if !known {
		bal, err := bank.Balance(kv, tx.Signer)
		if err != nil {
			return err
		}
		if bal == 0 {
			return auth.ErrUnknownAccount.Wrapf("%s has never held PHA; fund it before it sends transactions", tx.Signer)
		}
	}
	if err := auth.CheckNonce(next, tx.Body.Nonce); err != nil {
		return err
	}
	if err := bank.Debit(kv, tx.Signer, uint64(tx.Body.Fee), "the fee"); err != nil {
		return err
	}
	return auth.SetNonce(kv, tx.Signer, next+1)
}

// execEnv is what a message executes against: the state, the block's
// event log and the block's height and time (for CheckTx: the next height
// and the last block's time).
type execEnv struct {
	kv    store.KV
	log   *mq.Log
	block registry.Block
	// hash is the block's hash (block execution only): it seeds the draw
	// of a root key rotation's leaders.
	hash []byte
}

// execMsg performs the transaction's message. On error the caller discards
// kv's writes and log's new events. note explains a delivered worker
// message that had no effect.
func execMsg(env execEnv, tx *auth.Tx) (note string, err error) {
	kv, log := env.kv, env.log
	switch m := tx.Body.Msg.(type) {
	case *chainpb.TxBody_Transfer:
		return "", bank.Transfer(kv, tx.Signer, m.Transfer)
	case *chainpb.TxBody_PushMessage:
		return "", mq.Push(log, tx.Signer, m.PushMessage)
	case *chainpb.TxBody_RegisterWorker:
		info, err := registry.ValidateRegister(m.RegisterWorker)
		if err != nil {
			return "", err
		}
		if err := registry.Register(kv, log, platformVerifier, tx.Signer, m.RegisterWorker, info, env.block); err != nil {
			return "", err
		}
		if len(info.Predecessor) > 0 {
			return "", renewWorker(env, info)
		}
		return "", nil
	case *chainpb.TxBody_SubmitProposal:
		_, err := governance.Submit(kv, tx.Signer, env.block.Height, m.SubmitProposal, governanceHooks(env))
		return "", err
	case *chainpb.TxBody_Vote:
		return "", governance.Vote(kv, tx.Signer, env.block.Height, m.Vote)
	case *chainpb.TxBody_SubmitMessage:
		sm := m.SubmitMessage.Message
		wm, err := mq.DecodeWorkerMessage(sm.Payload)
		if err != nil {
			return "", err
		}
		if _, err := registry.Active(kv, sm.Sender, env.block.Time); err != nil {
			return "", err
		}
		if err := mq.Deliver(kv, log, sm); err != nil {
			return "", err
		}
		switch k := wm.Kind.(type) {
		case *chainpb.WorkerMessage_ContractKey:
			return contracts.HandleKey(kv, log, sm.Sender, k.ContractKey, env.block.Time, contractHooks(env))
		case *chainpb.WorkerMessage_ContractMessage:
			return contracts.HandleMessage(kv, log, sm.Sender, k.ContractMessage, env.block.Time)
		case *chainpb.WorkerMessage_ContractCheckpoint:
			return contracts.HandleCheckpoint(kv, log, sm.Sender, k.ContractCheckpoint)
		case *chainpb.WorkerMessage_Heartbeat:
			return monitor.Heartbeat(kv, sm.Sender, k.Heartbeat, env.block.Height, eraBlocks(kv))
		}
		return gatekeeper.HandleMessage(kv, log, sm.Sender, wm, rotationHooks(env))
	case *chainpb.TxBody_Stake:
		if err := staking.Stake(kv, tx.Signer, m.Stake, workerOperator(env)); err != nil {
			return "", err
		}
		return "", gatekeeper.ClearExclusion(kv, m.Stake.Worker)
	case *chainpb.TxBody_Nominate:
		return "", staking.Nominate(kv, tx.Signer, m.Nominate, workerOperator(env))
	case *chainpb.TxBody_DeployContract:
		_, err := contracts.Deploy(kv, log, tx.Signer, tx.Body.Nonce, m.DeployContract, contractHooks(env))
		return "", err
	case *chainpb.TxBody_ContractCommand:
		return "", contracts.Command(kv, log, tx.Signer, tx.Body.Nonce, m.ContractCommand, env.block.Time)
	case *chainpb.TxBody_ReassignContract:
		return "", contracts.Reassign(kv, log, tx.Signer, m.ReassignContract, contractHooks(env))
	case *chainpb.TxBody_RetireWorker:
		// A gatekeeper leaves with the root key rotation (the eras), not
		// by itself: the seats must stay filled.
		if seated, err := gatekeeper.Involved(kv, m.RetireWorker.Worker); err != nil {
			return "", err
		} else if seated {
			return "", registry.ErrSeated.Wrapf("worker %X is a gatekeeper (or elected to be one); it cannot deregister while it holds a seat", m.RetireWorker.Worker)
		}
		// Its contracts move at the end of the block (contracts.EndBlock).
		return "", registry.Deregister(kv, log, tx.Signer, m.RetireWorker)
	case *chainpb.TxBody_Unbond:
		return "", staking.Unbond(kv, tx.Signer, env.block.Height, m.Unbond, staking.UnbondHooks{
			Operator: func(w []byte) ([]byte, error) {
				op, ok, err := operatorOf(kv, w)
				if !ok {
					return nil, err
				}
				return op[:], err
			},
			Gatekeeper: func(w []byte) (bool, error) { return gatekeeper.Involved(kv, w) },
		})
	default:
		return "", auth.ErrUnknownMsg.Wrapf("%T", m)
	}
}

// endBlock runs the modules' end-of-block work on the block's writes.
func endBlock(env execEnv) error {
	// The era's judgement comes first: the election that follows in the
	// same block skips the gatekeepers it excludes, and the contracts of
	// the miners it bars move at the end.
	if eb := eraBlocks(env.kv); eb > 0 && env.block.Height%eb == 0 {
		era := monitor.EraOf(env.block.Height, eb)
		judged, err := monitor.EndEra(env.kv, era, eb, monitorHooks(env))
		if err != nil {
			return err
		}
		if _, err := payEra(env, era, judged); err != nil {
			return err
		}
	}
	if err := gatekeeper.EndBlock(env.kv, env.log, env.block.Height, env.hash, rotationHooks(env)); err != nil {
		return err
	}
	if err := staking.EndBlock(env.kv, env.block.Height); err != nil {
		return err
	}
	// After gatekeeper.EndBlock: a root key rotation it starts calls the
	// contract key rotations off in the same block (contracts/rekey.go).
	if err := contracts.EndBlock(env.kv, env.log, contractHooks(env)); err != nil {
		return err
	}
	// Referenda close last: the block ran under the parameters, allowlist
	// and freezes it began with; what passes applies from the next block.
	_, err := governance.EndBlock(env.kv, env.block.Height, governanceHooks(env))
	return err
}

// eraBlocks is the era length (0: no eras, or no launch configured).
func eraBlocks(r store.Reader) int64 {
	p, err := gatekeeper.LoadParams(r)
	if err != nil {
		return 0
	}
	return p.EraBlocks
}

func monitorHooks(env execEnv) monitor.Hooks {
	return monitor.Hooks{
		Workers: func() ([]*chainpb.Worker, error) { return registry.Workers(env.kv) },
		Gatekeepers: func() ([][]byte, error) {
			es, err := gatekeeper.Era(env.kv)
			var out [][]byte
			for _, g := range es.GetGatekeepers() {
				out = append(out, g.SigningKey)
			}
			return out, err
		},
		Miner: func(w *chainpb.Worker) (bool, error) {
			err := minerEligible(env, w.SigningKey)
			if isRejection(err) {
				return false, nil
			}
			return err == nil, err
		},
		SlashMiner:        slashBy(env, func(p staking.Params) uint64 { return p.SlashMinerPermille }),
		SlashGatekeeper:   slashBy(env, gatekeeperSlash),
		ExcludeGatekeeper: func(w []byte) error { return gatekeeper.Exclude(env.kv, w) },
	}
}

func rotationHooks(env execEnv) gatekeeper.RotationHooks {
	return gatekeeper.RotationHooks{
		Hooks:          launchHooks(env),
		KeyedContracts: func() ([][]byte, error) { return contracts.KeyedContracts(env.kv) },
		SetWrappedKey:  func(id, w []byte) error { return contracts.SetWrappedKey(env.kv, id, w) },
		Awaiting:       func() ([]*chainpb.AwaitingKey, error) { return contracts.Awaiting(env.kv) },
		Slash:          slashBy(env, gatekeeperSlash),
	}
}

func gatekeeperSlash(p staking.Params) uint64 { return p.SlashGatekeeperPermille }

// slashBy is a hook that takes permille(params) of a worker's bond and
// returns the amount (nothing if the worker has no record).
func slashBy(env execEnv, permille func(staking.Params) uint64) func(w []byte) (uint64, error) {
	return func(w []byte) (uint64, error) {
		p, err := staking.LoadParams(env.kv)
		if err != nil {
			return 0, err
		}
		op, ok, err := operatorOf(env.kv, w)
		if !ok {
			return 0, err
		}
		return staking.Slash(env.kv, w, op, permille(p))
	}
}

// operatorOf is the account that operates worker w, whatever its
// registration's state; ok is false if there is no such worker.
func operatorOf(r store.Reader, w []byte) (op crypto.Address, ok bool, err error) {
	wk, err := registry.Worker(r, w)
	if err != nil || wk == nil {
		return op, false, err
	}
	op, err = crypto.AddressFromBytes(wk.Operator)
	return op, err == nil, err
}

// platformVerifier wires the TEE platforms into the registry.
func platformVerifier(p registry.Params, platform string) (tee.Verifier, error) {
	switch platform {
	case "sim":
		keys, err := p.ServiceKeys()
		if err != nil {
			return nil, err
		}
		return attest.Verifier{
			ServiceKeys:  keys,
			MaxAge:       secondsDuration(p.MaxReportAge),
			MaxClockSkew: secondsDuration(p.MaxClockSkew),
		}, nil
	}
	return nil, errors.New(`this chain verifies platform "sim" only`)
}

// renewWorker passes a renewed worker's bond, nominations and gatekeeper
// seat to its successor; the registry has checked the renewal.
func renewWorker(env execEnv, info *chainpb.WorkerInfo) error {
	old, err := registry.Worker(env.kv, info.Predecessor)
	if err != nil {
		return err
	}
	nw, err := registry.Worker(env.kv, info.SigningKey)
	if err != nil {
		return err
	}
	if err := gatekeeper.Renew(env.kv, old, nw); err != nil {
		return err
	}
	if err := contracts.Renew(env.kv, env.log, old.SigningKey, nw.SigningKey); err != nil {
		return err
	}
	return staking.Renew(env.kv, old.SigningKey, nw.SigningKey)
}

func contractHooks(env execEnv) contracts.Hooks {
	return contracts.Hooks{
		Launched: func() (bool, error) {
			p, err := gatekeeper.LoadPhase(env.kv)
			return p == gatekeeper.PhaseLaunched, err
		},
		Miner: func(w []byte) error {
			if err := minerEligible(env, w); err != nil {
				return err
			}
			if late, err := monitor.Unresponsive(env.kv, w); err != nil {
				return err
			} else if late {
				return contracts.ErrBadMiner.Wrapf("worker %X was found unresponsive; it runs contracts again after a responsive era", w)
			}
			return nil
		},
		Gatekeeper: func(w []byte) (bool, error) { return gatekeeper.Seated(env.kv, w) },
		Rotating:   func() (bool, error) { return gatekeeper.Rotating(env.kv) },
		Workers: func() ([][]byte, error) {
			ws, err := registry.Workers(env.kv)
			keys := make([][]byte, len(ws))
			for i, w := range ws {
				keys[i] = w.SigningKey
			}
			return keys, err
		},
	}
}

// minerEligible checks worker may run contracts, responsiveness aside: an
// error wrapping contracts.ErrBadMiner if it may not.
func minerEligible(env execEnv, w []byte) error {
	wk, err := registry.Active(env.kv, w, env.block.Time)
	if err != nil {
		if isRejection(err) {
			return contracts.ErrBadMiner.Wrapf("%v; pick a registered worker from `phala status`", err)
		}
		return err
	}
	if wk.Genesis {
		return contracts.ErrBadMiner.Wrapf("worker %X is the genesis worker, which retires at launch", w)
	}
	if seated, err := gatekeeper.Seated(env.kv, w); err != nil {
		return err
	} else if seated {
		return contracts.ErrBadMiner.Wrapf("worker %X is a gatekeeper; gatekeepers hold keys and run no contracts", w)
	}
	if ok, err := staking.MinerBonded(env.kv, w); err != nil {
		return err
	} else if !ok {
		p, _ := staking.LoadParams(env.kv)
		return contracts.ErrBadMiner.Wrapf("worker %X has less than the %d uPHA a miner must bond; its host bonds it with `phala host --stake PHA`", w, p.MinMinerStake)
	}
	return nil
}

func workerOperator(env execEnv) staking.WorkerOperator {
	return func(w []byte) ([]byte, error) {
		wk, err := registry.Active(env.kv, w, env.block.Time)
		if err != nil {
			if isRejection(err) {
				return nil, nil
			}
			return nil, err
		}
		if wk.Genesis {
			return nil, nil
		}
		return wk.Operator, nil
	}
}

func launchHooks(env execEnv) gatekeeper.Hooks {
	return gatekeeper.Hooks{
		Eligible: func(w []byte) (bool, error) {
			op, err := workerOperator(env)(w)
			return op != nil, err
		},
		HPKEKey: func(w []byte) ([]byte, error) {
			wk, err := registry.Worker(env.kv, w)
			if err != nil || wk == nil {
				return nil, errors.Join(err, errors.New("elected worker has no record"))
			}
			return wk.HpkeKey, nil
		},
		Retire: func(w []byte) error { return registry.Retire(env.kv, env.log, w) },
	}
}

// msgEvents are the ABCI events that index a successful message (for
// CometBFT's tx_search). Only block execution builds them; CheckTx's result
// is not indexed. logIndex is the message's first worker event, if any.
func msgEvents(tx *auth.Tx, signer string, names *addressNames, logIndex int, note string) []abci.Event {
	switch m := tx.Body.Msg.(type) {
	case *chainpb.TxBody_Transfer:
		to, _ := crypto.AddressFromBytes(m.Transfer.To)
		return []abci.Event{{Type: "transfer", Attributes: []abci.EventAttribute{
			{Key: "sender", Value: signer, Index: true},
			{Key: "recipient", Value: names.name(to), Index: true},
			{Key: "amount", Value: strconv.FormatInt(m.Transfer.Amount, 10)},
		}}}
	case *chainpb.TxBody_PushMessage:
		return []abci.Event{{Type: "push_message", Attributes: []abci.EventAttribute{
			{Key: "sender", Value: signer, Index: true},
			{Key: "topic", Value: m.PushMessage.Topic, Index: true},
			{Key: "event_index", Value: strconv.Itoa(logIndex)},
		}}}
	case *chainpb.TxBody_SubmitMessage:
		sm := m.SubmitMessage.Message
		effect := "applied"
		if note != "" {
			effect = "ignored: " + note
		}
		return []abci.Event{{Type: "worker_message", Attributes: []abci.EventAttribute{
			{Key: "sender", Value: hex.EncodeToString(sm.Sender), Index: true},
			{Key: "sequence", Value: strconv.FormatUint(sm.Sequence, 10)},
			{Key: "effect", Value: effect},
		}}}
	case *chainpb.TxBody_DeployContract:
		return []abci.Event{{Type: "deploy_contract", Attributes: []abci.EventAttribute{
			{Key: "contract", Value: crypto.NewContractID(tx.Signer, tx.Body.Nonce).String(), Index: true},
			{Key: "deployer", Value: signer, Index: true},
			{Key: "miners", Value: hexList(m.DeployContract.Miners), Index: true},
		}}}
	case *chainpb.TxBody_RetireWorker:
		return []abci.Event{{Type: "retire_worker", Attributes: []abci.EventAttribute{
			{Key: "worker", Value: hex.EncodeToString(m.RetireWorker.Worker), Index: true},
			{Key: "operator", Value: signer, Index: true},
		}}}
	case *chainpb.TxBody_ReassignContract:
		id, _ := crypto.ContractIDFromBytes(m.ReassignContract.Contract)
		return []abci.Event{{Type: "reassign_contract", Attributes: []abci.EventAttribute{
			{Key: "contract", Value: id.String(), Index: true},
			{Key: "miners", Value: hexList(m.ReassignContract.Miners), Index: true},
		}}}
	case *chainpb.TxBody_ContractCommand:
		id, _ := crypto.ContractIDFromBytes(m.ContractCommand.Contract)
		return []abci.Event{{Type: "contract_command", Attributes: []abci.EventAttribute{
			{Key: "contract", Value: id.String(), Index: true},
			{Key: "sender", Value: signer, Index: true},
			{Key: "nonce", Value: strconv.FormatUint(tx.Body.Nonce, 10)},
			{Key: "event_index", Value: strconv.Itoa(logIndex)},
		}}}
	case *chainpb.TxBody_SubmitProposal:
		return []abci.Event{{Type: "submit_proposal", Attributes: []abci.EventAttribute{
			{Key: "proposer", Value: signer, Index: true},
			{Key: "action", Value: actionKind(m.SubmitProposal.Action), Index: true},
		}}}
	case *chainpb.TxBody_Vote:
		return []abci.Event{{Type: "vote", Attributes: []abci.EventAttribute{
			{Key: "voter", Value: signer, Index: true},
			{Key: "proposal", Value: strconv.FormatUint(m.Vote.Proposal, 10), Index: true},
			{Key: "option", Value: voteOption(m.Vote.Option)},
		}}}
	case *chainpb.TxBody_RegisterWorker:
		info, _ := registry.DecodeWorkerInfo(m.RegisterWorker.Info)
		attrs := []abci.EventAttribute{
			{Key: "worker", Value: hex.EncodeToString(info.GetSigningKey()), Index: true},
			{Key: "operator", Value: signer, Index: true},
		}
		if p := info.GetPredecessor(); len(p) > 0 {
			attrs = append(attrs, abci.EventAttribute{Key: "predecessor", Value: hex.EncodeToString(p), Index: true})
		}
		return []abci.Event{{Type: "register_worker", Attributes: attrs}}
	}
	return nil
}

// hexList is keys in hex, comma-separated.
func hexList(keys [][]byte) string {
	var b []byte
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = hex.AppendEncode(b, k)
	}
	return string(b)
}

// txEvent indexes every executed transaction by signer and message type
// (nonce and fee are in the transaction itself).
func txEvent(tx *auth.Tx, signer string) abci.Event {
	return abci.Event{Type: "tx", Attributes: []abci.EventAttribute{
		{Key: "signer", Value: signer, Index: true},
		{Key: "msg", Value: tx.MsgName(), Index: true},
	}}
}

// addressNames memoises bech32 forms of addresses for event attributes:
// active accounts recur block after block. Used by the consensus goroutine
// only; it forgets everything when it grows past its bound.
type addressNames struct{ m map[crypto.Address]string }

func (n *addressNames) name(a crypto.Address) string {
	if s, ok := n.m[a]; ok {
		return s
	}
	if n.m == nil || len(n.m) >= 1<<16 {
		n.m = make(map[crypto.Address]string)
	}
	s := a.String()
	n.m[a] = s
	return s
}
