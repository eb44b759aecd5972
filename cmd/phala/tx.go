package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/proto/chainpb"
)

// txFlags are the flags every transaction command takes.
type txFlags struct {
	from  string
	fee   string
	nonce int64
	memo  string
}

func (f *txFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.from, "from", "", "name of the signing key in HOME/keyring (required)")
	cmd.Flags().StringVar(&f.fee, "fee", "", "fee, e.g. 0.01 or 2500upha (default: the chain's minimum)")
	cmd.Flags().Int64Var(&f.nonce, "nonce", -1, "account nonce (default: the account's next nonce)")
	cmd.Flags().StringVar(&f.memo, "memo", "", "free text stored with the transaction")
	cmd.MarkFlagRequired("from")
}

// signer opens the --from key and the send options the flags set.
func (f *txFlags) signer(g *globals) (ed25519.PrivateKey, client.SendOptions, error) {
	opts := client.SendOptions{Memo: f.memo}
	kr, err := openKeyring(g)
	if err != nil {
		return nil, opts, err
	}
	key, err := kr.Get(f.from)
	if err != nil {
		return nil, opts, err
	}
	if f.fee != "" {
		fee, err := bank.ParseAmount(f.fee)
		if err != nil {
			return nil, opts, fmt.Errorf("--fee: %w", err)
		}
		opts.Fee = &fee
	}
	if f.nonce >= 0 {
		n := uint64(f.nonce)
		opts.Nonce = &n
	}
	return key.PrivateKey(), opts, nil
}

// send signs body with the --from key, broadcasts it, waits for its block
// and prints the result.
func (f *txFlags) send(cmd *cobra.Command, g *globals, body *chainpb.TxBody) error {
	key, opts, err := f.signer(g)
	if err != nil {
		return err
	}
	c, err := client.New(g.nodeAddr())
	if err != nil {
		return err
	}
	res, err := c.Send(cmd.Context(), key, body, opts)
	if err != nil {
		return err
	}
	return emit(cmd.OutOrStdout(), g, res, func(w io.Writer) {
		fmt.Fprintf(w, "committed in block %d\ntx hash:\t%s\n", res.Height, res.Hash)
	})
}

func txCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tx", Short: "Sign and send transactions"}

	var tf txFlags
	var to, amount string
	transfer := &cobra.Command{
		Use:   "transfer --from NAME --to ADDR --amount AMOUNT",
		Short: "Send PHA to an account",
		Long:  "Send PHA to an account. AMOUNT is PHA (1.5, 1.5PHA) or base units (1500000upha); --to takes an address or a key name.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dst, err := resolveAddress(g, to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			amt, err := bank.ParseAmount(amount)
			if err != nil {
				return fmt.Errorf("--amount: %w", err)
			}
			return tf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: dst.Bytes(), Amount: amt}}})
		},
	}
	tf.register(transfer)
	transfer.Flags().StringVar(&to, "to", "", "recipient address or key name (required)")
	transfer.Flags().StringVar(&amount, "amount", "", "amount, e.g. 1.5 (PHA) or 1500000upha (required)")
	transfer.MarkFlagRequired("to")
	transfer.MarkFlagRequired("amount")

	var pf txFlags
	var topic, payload, payloadHex string
	push := &cobra.Command{
		Use:   "push --from NAME --topic TOPIC --payload TEXT",
		Short: "Append an ingress message to the worker event log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data := []byte(payload)
			if payloadHex != "" {
				var err error
				if data, err = hex.DecodeString(payloadHex); err != nil {
					return fmt.Errorf("--payload-hex: %w", err)
				}
			}
			return pf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_PushMessage{PushMessage: &chainpb.MsgPushMessage{Topic: topic, Payload: data}}})
		},
	}
	pf.register(push)
	push.Flags().StringVar(&topic, "topic", "", "topic of the message (required)")
	push.Flags().StringVar(&payload, "payload", "", "payload as text")
	push.Flags().StringVar(&payloadHex, "payload-hex", "", "payload as hex (instead of --payload)")
	push.MarkFlagRequired("topic")
	push.MarkFlagsMutuallyExclusive("payload", "payload-hex")

	cmd.AddCommand(transfer, push)
	return cmd
}
