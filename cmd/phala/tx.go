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
		fee, err := amountFlag("--fee", f.fee)
		if err != nil {
			return nil, opts, err
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

// amountFlag reads flag name's AMOUNT: PHA (1.5, 1.5PHA) or base units
// (1500000upha).
func amountFlag(name, s string) (int64, error) {
	amt, err := bank.ParseAmount(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return amt, nil
}

// payFlags are a payment's --to and --amount: a transfer's, a treasury
// spend's.
type payFlags struct{ to, amount string }

func (f *payFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.to, "to", "", "recipient address or key name (required)")
	cmd.Flags().StringVar(&f.amount, "amount", "", "amount, e.g. 1.5 (PHA) or 1500000upha (required)")
	cmd.MarkFlagRequired("to")
	cmd.MarkFlagRequired("amount")
}

// parse returns the recipient's address bytes and the amount.
func (f *payFlags) parse(g *globals) ([]byte, int64, error) {
	dst, err := resolveAddress(g, f.to)
	if err != nil {
		return nil, 0, fmt.Errorf("--to: %w", err)
	}
	amt, err := amountFlag("--amount", f.amount)
	return dst.Bytes(), amt, err
}

func txCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tx", Short: "Sign and send transactions"}

	var tf txFlags
	var pay payFlags
	transfer := &cobra.Command{
		Use:   "transfer --from NAME --to ADDR --amount AMOUNT",
		Short: "Send PHA to an account",
		Long:  "Send PHA to an account. AMOUNT is PHA (1.5, 1.5PHA) or base units (1500000upha); --to takes an address or a key name.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			to, amt, err := pay.parse(g)
			if err != nil {
				return err
			}
			return tf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: to, Amount: amt}}})
		},
	}
	tf.register(transfer)
	pay.register(transfer)

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
			w, err := workerKey(cmd, g, worker)
			if err != nil {
				return err
			}
			return rf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_RetireWorker{RetireWorker: &chainpb.MsgRetireWorker{Worker: w}}})
		},
	}
	rf.register(retire)
	retire.Flags().StringVar(&worker, "worker", "", "the worker: identity key (hex) or its operator's key name (required)")
	retire.MarkFlagRequired("worker")

	cmd.AddCommand(transfer, push, retire, stakeCmd(g), nominateCmd(g), unbondCmd(g))
	return cmd
}
