package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/proto/chainpb"
)

// stakeCmd, nominateCmd and unbondCmd are the staking transactions of
// `phala tx`.
func stakeCmd(g *globals) *cobra.Command {
	var tf txFlags
	var worker, amount string
	cmd := &cobra.Command{
		Use:   "stake --worker WORKER --amount AMOUNT --from OPERATOR",
		Short: "Bond PHA to a worker you operate (a miner's bond, or a gatekeeper candidacy)",
		Long: `Bond AMOUNT of the operator's PHA to WORKER (its identity key, or the key name of
its operator). A worker bonded at least min_candidate_stake stands for the
gatekeeper election; a miner needs min_miner_stake to run contracts. Bonded PHA
still counts as its owner's voting weight in referenda.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amt, err := amountFlag("--amount", amount)
			if err != nil {
				return err
			}
			w, err := workerKey(cmd, g, worker)
			if err != nil {
				return err
			}
			return tf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_Stake{Stake: &chainpb.MsgStake{Worker: w, Amount: amt}}})
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&worker, "worker", "", "the worker: identity key (hex) or its operator's key name (required)")
	cmd.Flags().StringVar(&amount, "amount", "", "amount, e.g. 1000 (PHA) or 1000000000upha (required)")
	cmd.MarkFlagRequired("worker")
	cmd.MarkFlagRequired("amount")
	return cmd
}

func nominateCmd(g *globals) *cobra.Command {
	var tf txFlags
	var targets []string
	var amount string
	cmd := &cobra.Command{
		Use:   "nominate --target WORKER [--target WORKER ...] [--amount AMOUNT] --from NAME",
		Short: "Back gatekeeper candidates with a nomination bond",
		Long: `Bond AMOUNT more of your PHA (0, the default, keeps the bond as it is) and set the
candidates your whole nomination backs in the gatekeeper election: each --target
a worker's identity key or its operator's key name. A first nomination must
bond a positive amount.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var amt int64
			if amount != "" {
				var err error
				if amt, err = amountFlag("--amount", amount); err != nil {
					return err
				}
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			keys := make([][]byte, len(targets))
			for i, t := range targets {
				w, err := resolveWorker(cmd.Context(), g, c, t)
				if err != nil {
					return fmt.Errorf("--target %s: %w", t, err)
				}
				keys[i] = w.SigningKey
			}
			return tf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_Nominate{Nominate: &chainpb.MsgNominate{Targets: keys, Amount: amt}}})
		},
	}
	tf.register(cmd)
	cmd.Flags().StringArrayVar(&targets, "target", nil, "a candidate: identity key (hex) or its operator's key name (required; repeat for several)")
	cmd.Flags().StringVar(&amount, "amount", "", "more PHA to bond, e.g. 500 or 500000000upha (default 0)")
	cmd.MarkFlagRequired("target")
	return cmd
}

func unbondCmd(g *globals) *cobra.Command {
	var tf txFlags
	var worker, amount string
	cmd := &cobra.Command{
		Use:   "unbond [--worker WORKER] --amount AMOUNT --from NAME",
		Short: "Start paying back bonded PHA: a self stake on --worker, or your nomination",
		Long: `Unbond AMOUNT of your self stake on WORKER or, without --worker, of your
nomination. It stays in the staking pool, and can still be slashed, for
unbonding_blocks, then comes back to your balance. A gatekeeper holding a seat
cannot unbond below min_candidate_stake.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amt, err := amountFlag("--amount", amount)
			if err != nil {
				return err
			}
			var w []byte // empty: the nomination
			if worker != "" {
				if w, err = workerKey(cmd, g, worker); err != nil {
					return err
				}
			}
			return tf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_Unbond{Unbond: &chainpb.MsgUnbond{Worker: w, Amount: amt}}})
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&worker, "worker", "", "the worker of the self stake: identity key (hex) or its operator's key name (default: your nomination)")
	cmd.Flags().StringVar(&amount, "amount", "", "amount, e.g. 100 (PHA) or 100000000upha (required)")
	cmd.MarkFlagRequired("amount")
	return cmd
}
