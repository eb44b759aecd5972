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
	if min := p.MinFee(len(tx.Raw)); tx.Body.Fee < min {
		return auth.ErrFeeTooLow.Wrapf("fee is %d %s, this %d-byte transaction needs at least %d", tx.Body.Fee, bank.BaseDenom, len(tx.Raw), min)
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

// execMsg performs the transaction's message and returns the ABCI events
// that index it. On error the caller discards kv's writes and log's new
// events.
func execMsg(kv store.KV, log *mq.Log, tx *auth.Tx) ([]abci.Event, error) {
	switch m := tx.Body.Msg.(type) {
	case *chainpb.TxBody_Transfer:
		if err := bank.Transfer(kv, tx.Signer, m.Transfer); err != nil {
			return nil, err
		}
		to, _ := crypto.AddressFromBytes(m.Transfer.To)
		return []abci.Event{{Type: "transfer", Attributes: []abci.EventAttribute{
			{Key: "sender", Value: tx.Signer.String(), Index: true},
			{Key: "recipient", Value: to.String(), Index: true},
			{Key: "amount", Value: strconv.FormatInt(m.Transfer.Amount, 10)},
		}}}, nil
	case *chainpb.TxBody_PushMessage:
		idx := log.Len()
		if err := mq.Push(log, tx.Signer, m.PushMessage); err != nil {
			return nil, err
		}
		return []abci.Event{{Type: "push_message", Attributes: []abci.EventAttribute{
			{Key: "sender", Value: tx.Signer.String(), Index: true},
			{Key: "topic", Value: m.PushMessage.Topic, Index: true},
			{Key: "event_index", Value: strconv.Itoa(idx)},
		}}}, nil
	default:
		return nil, auth.ErrUnknownMsg.Wrapf("%T", m)
	}
}

func txEvent(tx *auth.Tx) abci.Event {
	return abci.Event{Type: "tx", Attributes: []abci.EventAttribute{
		{Key: "signer", Value: tx.Signer.String(), Index: true},
		{Key: "nonce", Value: strconv.FormatUint(tx.Body.Nonce, 10)},
		{Key: "fee", Value: strconv.FormatInt(tx.Body.Fee, 10)},
		{Key: "msg", Value: tx.MsgName(), Index: true},
	}}
}
