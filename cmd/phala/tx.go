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

	var rf txFlags
	var worker string
	retire := &cobra.Command{
		Use:   "retire-worker --worker WORKER --from OPERATOR",
		Short: "Deregister a worker for good (its operator only)",
		Long: `Deregister WORKER (its identity key, or its operator's key name), signed by its
operator. The chain marks it retired; its pRuntime erases its keys when it sees
that; the contracts it ran move to other miners at the end of the block and
recover from their checkpoints. A gatekeeper cannot deregister while it holds a
seat (registry/19).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			w, err := resolveWorker(cmd.Context(), g, c, worker)
			if err != nil {
				return fmt.Errorf("--worker: %w", err)
			}
			return rf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_RetireWorker{RetireWorker: &chainpb.MsgRetireWorker{Worker: w.SigningKey}}})
		},
	}
	rf.register(retire)
	retire.Flags().StringVar(&worker, "worker", "", "the worker: identity key (hex) or its operator's key name (required)")
	retire.MarkFlagRequired("worker")

	cmd.AddCommand(transfer, push, retire)
	return cmd
}
