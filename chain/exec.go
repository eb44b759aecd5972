package chain

import (
	"strconv"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// validateStateless runs every check that needs neither state nor the
// signature: the message's own rules and the minimum fee.
func validateStateless(tx *auth.Tx, p auth.Params) error {
	switch m := tx.Body.Msg.(type) {
	case *chainpb.TxBody_Transfer:
		if err := bank.ValidateTransfer(m.Transfer); err != nil {
			return err
		}
	case *chainpb.TxBody_PushMessage:
		if err := mq.ValidatePush(m.PushMessage); err != nil {
			return err
		}
	default:
		return auth.ErrUnknownMsg.Wrapf("%T", m)
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

// execMsg performs the transaction's message. On error the caller discards
// kv's writes and log's new events.
func execMsg(kv store.KV, log *mq.Log, tx *auth.Tx) error {
	switch m := tx.Body.Msg.(type) {
	case *chainpb.TxBody_Transfer:
		return bank.Transfer(kv, tx.Signer, m.Transfer)
	case *chainpb.TxBody_PushMessage:
		return mq.Push(log, tx.Signer, m.PushMessage)
	default:
		return auth.ErrUnknownMsg.Wrapf("%T", m)
	}
}

// msgEvents are the ABCI events that index a successful message (for
// CometBFT's tx_search). Only block execution builds them; CheckTx's result
// is not indexed. logIndex is the message's first worker event, if any.
func msgEvents(tx *auth.Tx, signer string, names *addressNames, logIndex int) []abci.Event {
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
	}
	return nil
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
