package main

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
)

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

func (f *txFlags) options() (client.SendOptions, error) {
	o := client.SendOptions{Memo: f.memo}
	if f.fee != "" {
		fee, err := bank.ParseAmount(f.fee)
		if err != nil {
			return o, fmt.Errorf("--fee: %w", err)
		}
		o.Fee = &fee
	}
	if f.nonce >= 0 {
		n := uint64(f.nonce)
		o.Nonce = &n
	}
	return o, nil
}

func printTxResult(cmd *cobra.Command, g *globals, res *client.TxResult) error {
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
			kr, err := openKeyring(g)
			if err != nil {
				return err
			}
			key, err := kr.Get(tf.from)
			if err != nil {
				return err
			}
			dst, err := resolveAddress(g, to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			amt, err := bank.ParseAmount(amount)
			if err != nil {
				return fmt.Errorf("--amount: %w", err)
			}
			opts, err := tf.options()
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			res, err := c.Transfer(cmd.Context(), key.PrivateKey(), dst, amt, opts)
			if err != nil {
				return err
			}
			return printTxResult(cmd, g, res)
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
			kr, err := openKeyring(g)
			if err != nil {
				return err
			}
			key, err := kr.Get(pf.from)
			if err != nil {
				return err
			}
			data := []byte(payload)
			if payloadHex != "" {
				if data, err = hex.DecodeString(payloadHex); err != nil {
					return fmt.Errorf("--payload-hex: %w", err)
				}
			}
			opts, err := pf.options()
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			res, err := c.PushMessage(cmd.Context(), key.PrivateKey(), topic, data, opts)
			if err != nil {
				return err
			}
			return printTxResult(cmd, g, res)
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
