package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/proto/chainpb"
)

func govCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gov",
		Short: "Referenda: propose a change, vote on it, show proposals and parameters",
		Long: `On-chain governance (docs/governance.md). Anyone may propose one action with a
deposit; PHA holders vote yes, no or abstain, weighed by their PHA (free balance
plus bonds) when voting ends. A passed action applies at the end of the block
where voting ends.`,
	}
	cmd.AddCommand(proposeCmd(g), voteCmd(g), govShowCmd(g), govParamsCmd(g))
	return cmd
}

// proposeFlags are the flags every proposal takes.
type proposeFlags struct {
	tx      txFlags
	title   string
	deposit string
}

func (f *proposeFlags) register(cmd *cobra.Command) {
	f.tx.register(cmd)
	cmd.Flags().StringVar(&f.title, "title", "", "the proposal's title, up to 140 bytes (required)")
	cmd.Flags().StringVar(&f.deposit, "deposit", "", "deposit, e.g. 1000 (PHA) or 1000000000upha (default: the chain's min_deposit)")
	cmd.MarkFlagRequired("title")
}

type proposedView struct {
	Proposal  uint64 `json:"proposal"`
	Height    int64  `json:"height"`
	Tx        string `json:"tx"`
	Deposit   uint64 `json:"deposit"`
	VotingEnd int64  `json:"voting_end"`
	Emergency bool   `json:"emergency"`
}

// send submits the proposal and prints its id and when voting ends.
func (f *proposeFlags) send(cmd *cobra.Command, g *globals, action *chainpb.ProposalAction) error {
	ctx := cmd.Context()
	key, opts, err := f.tx.signer(g)
	if err != nil {
		return err
	}
	c, err := client.New(g.nodeAddr())
	if err != nil {
		return err
	}
	var deposit int64
	if f.deposit == "" {
		p, err := c.GovernanceParams(ctx)
		if err != nil {
			return err
		}
		deposit = int64(p.MinDeposit)
	} else if deposit, err = amountFlag("--deposit", f.deposit); err != nil {
		return err
	}
	id, res, err := c.SubmitProposal(ctx, key, f.title, deposit, action, opts)
	if err != nil {
		return err
	}
	v := proposedView{Proposal: id, Height: res.Height, Tx: res.Hash, Deposit: uint64(deposit)}
	if p, err := c.Proposal(ctx, id); err != nil {
		return err
	} else if p != nil {
		v.VotingEnd, v.Emergency = p.VotingEnd, p.Emergency
	}
	return emit(cmd.OutOrStdout(), g, v, func(w io.Writer) {
		fmt.Fprintf(w, "committed in block %d\ntx hash:\t%s\nproposal:\t%d\ndeposit:\t%s\n", v.Height, v.Tx, v.Proposal, bank.FormatAmount(v.Deposit))
		fmt.Fprintf(w, "voting ends:\tblock %d (%s track)\nvote with:\tphala gov vote %d yes|no|abstain --from NAME\n", v.VotingEnd, track(v.Emergency), v.Proposal)
	})
}

func proposeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "propose", Short: "Submit a proposal: param-change, set-measurement, freeze-platform or treasury-spend"}

	var pf proposeFlags
	var module, params string
	paramChange := &cobra.Command{
		Use:   "param-change --module MODULE --params FILE|JSON --title TITLE --from NAME",
		Short: "Propose to replace a module's whole parameters",
		Long: `Propose to replace MODULE's parameters (auth, registry, staking, gatekeeper,
contracts, rewards or governance) with the JSON object --params gives (a file, or
the JSON itself). It must carry every field: start from the current ones with
` + "`phala gov params MODULE`" + `. The chain refuses at submission a change with an
unknown or missing field, an invalid value, or no change at all; the monitor's
parameters and gatekeeper era_blocks are fixed at genesis.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := paramsJSON(params)
			if err != nil {
				return err
			}
			return pf.send(cmd, g, &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_ParamChange{ParamChange: &chainpb.ParamChange{Module: module, ParamsJson: b}}})
		},
	}
	pf.register(paramChange)
	paramChange.Flags().StringVar(&module, "module", "", "the module whose parameters change (required)")
	paramChange.Flags().StringVar(&params, "params", "", "the new parameters: a JSON file, or the JSON object itself (required)")
	paramChange.MarkFlagRequired("module")
	paramChange.MarkFlagRequired("params")

	var mf proposeFlags
	var mPlatform, measurement string
	var remove bool
	setMeasurement := &cobra.Command{
		Use:   "set-measurement --platform PLATFORM --measurement HEX [--remove] --title TITLE --from NAME",
		Short: "Propose to allow a pRuntime build (or, with --remove, to forbid it)",
		Long: `Propose to add the pRuntime build with measurement HEX on PLATFORM to the allowlist
workers must run to register, or with --remove to take it off (workers already
registered on it keep running until their registration expires).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := hex.DecodeString(strings.TrimPrefix(measurement, "0x"))
			if err != nil || len(m) == 0 {
				return fmt.Errorf("--measurement %q: want the build's measurement in hex (a worker's record shows it: `phala status`)", measurement)
			}
			return mf.send(cmd, g, &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_SetMeasurement{SetMeasurement: &chainpb.SetMeasurementAction{Platform: mPlatform, Measurement: m, Allowed: !remove}}})
		},
	}
	mf.register(setMeasurement)
	setMeasurement.Flags().StringVar(&mPlatform, "platform", "", "the TEE platform, e.g. sim (required)")
	setMeasurement.Flags().StringVar(&measurement, "measurement", "", "the build's measurement, hex (required)")
	setMeasurement.Flags().BoolVar(&remove, "remove", false, "take the build off the allowlist instead")
	setMeasurement.MarkFlagRequired("platform")
	setMeasurement.MarkFlagRequired("measurement")

	var ff proposeFlags
	var fPlatform string
	var unfreeze bool
	freeze := &cobra.Command{
		Use:   "freeze-platform --platform PLATFORM [--unfreeze] --title TITLE --from NAME",
		Short: "Propose, on the emergency track, to stop (or with --unfreeze resume) registrations on a TEE platform",
		Long: `Propose to freeze PLATFORM after a vulnerability in it is disclosed: while it is
frozen the chain refuses registrations and identity renewals on it (registry/20).
Workers registered on it keep running until their registration expires. The
proposal runs on the emergency track (a shorter vote; yes must reach
emergency_threshold_permille of the supply). --unfreeze proposes to lift it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ff.send(cmd, g, &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_FreezePlatform{FreezePlatform: &chainpb.FreezePlatform{Platform: fPlatform, Frozen: !unfreeze}}})
		},
	}
	ff.register(freeze)
	freeze.Flags().StringVar(&fPlatform, "platform", "", "the TEE platform, e.g. sim (required)")
	freeze.Flags().BoolVar(&unfreeze, "unfreeze", false, "propose to lift the platform's freeze instead")
	freeze.MarkFlagRequired("platform")

	var sf proposeFlags
	var pay payFlags
	spend := &cobra.Command{
		Use:   "treasury-spend --to ADDR --amount AMOUNT --title TITLE --from NAME",
		Short: "Propose to pay from the treasury",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			to, amt, err := pay.parse(g)
			if err != nil {
				return err
			}
			return sf.send(cmd, g, &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_TreasurySpend{TreasurySpend: &chainpb.TreasurySpend{To: to, Amount: amt}}})
		},
	}
	sf.register(spend)
	pay.register(spend)

	cmd.AddCommand(paramChange, setMeasurement, freeze, spend)
	return cmd
}

// paramsJSON reads --params: the JSON object itself, or a file holding it.
func paramsJSON(s string) ([]byte, error) {
	b := []byte(s)
	if t := strings.TrimSpace(s); !strings.HasPrefix(t, "{") {
		var err error
		if b, err = os.ReadFile(strings.TrimPrefix(t, "@")); err != nil {
			return nil, fmt.Errorf("--params is neither a JSON object nor a readable file: %w", err)
		}
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("--params is not JSON: %w", err)
	}
	return out.Bytes(), nil
}

func voteCmd(g *globals) *cobra.Command {
	var tf txFlags
	cmd := &cobra.Command{
		Use:   "vote ID yes|no|abstain --from NAME",
		Short: "Vote on a proposal (a later vote replaces yours)",
		Long: `Vote on proposal ID. Your vote is weighed by your PHA (free balance plus your
bonds) when voting ends, not now; voting again replaces your vote.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := proposalID(args[0])
			if err != nil {
				return err
			}
			opt, err := parseVoteOption(args[1])
			if err != nil {
				return err
			}
			return tf.send(cmd, g, &chainpb.TxBody{Msg: &chainpb.TxBody_Vote{Vote: &chainpb.MsgVote{Proposal: id, Option: opt}}})
		},
	}
	tf.register(cmd)
	return cmd
}

// proposalID reads a proposal's number (ids start at 1).
func proposalID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("proposal %q: want its number, as `phala gov show` lists it", s)
	}
	return id, nil
}

func parseVoteOption(s string) (chainpb.VoteOption, error) {
	switch strings.ToLower(s) {
	case "yes":
		return chainpb.VoteOption_VOTE_OPTION_YES, nil
	case "no":
		return chainpb.VoteOption_VOTE_OPTION_NO, nil
	case "abstain":
		return chainpb.VoteOption_VOTE_OPTION_ABSTAIN, nil
	}
	return 0, fmt.Errorf("vote %q: want yes, no or abstain", s)
}

type govView struct {
	Params    governance.Params      `json:"params"`
	Frozen    []frozenView           `json:"frozen_platforms"`
	Proposals []chain.ProposalRecord `json:"proposals"`
}

type frozenView struct {
	Platform string `json:"platform"`
	Proposal uint64 `json:"proposal"`
}

func govShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show [ID]",
		Short: "List the proposals, the parameters and the frozen platforms, or show proposal ID with its ballots",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				id, err := proposalID(args[0])
				if err != nil {
					return err
				}
				p, err := c.Proposal(ctx, id)
				if err != nil {
					return err
				}
				if p == nil {
					return fmt.Errorf("no proposal %d; list them with `phala gov show`", id)
				}
				return emit(cmd.OutOrStdout(), g, p, func(w io.Writer) { printProposal(w, p) })
			}
			var v govView
			if v.Params, err = c.GovernanceParams(ctx); err != nil {
				return err
			}
			fs, err := c.FrozenPlatforms(ctx)
			if err != nil {
				return err
			}
			v.Frozen = make([]frozenView, len(fs))
			for i, f := range fs {
				v.Frozen[i] = frozenView{f.Platform, f.Proposal}
			}
			if v.Proposals, err = c.Proposals(ctx); err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), g, v, func(w io.Writer) {
				p := v.Params
				fmt.Fprintf(w, "voting:\t%d blocks (emergency %d)\nmin deposit:\t%s\nquorum:\t%s of the supply\nemergency threshold:\t%s of the supply voting yes\n",
					p.VotingBlocks, p.EmergencyVotingBlocks, bank.FormatAmount(p.MinDeposit), permille(p.QuorumPermille), permille(p.EmergencyThresholdPermille))
				if len(v.Frozen) > 0 {
					fmt.Fprintf(w, "frozen platforms:\n")
					for _, f := range v.Frozen {
						fmt.Fprintf(w, "  %s\tby referendum %d\n", f.Platform, f.Proposal)
					}
				}
				if len(v.Proposals) == 0 {
					fmt.Fprintf(w, "proposals:\tnone\n")
					return
				}
				fmt.Fprintf(w, "proposals:\n")
				for _, pr := range v.Proposals {
					fmt.Fprintf(w, "  %d\t%s\t%s\tends block %d\t%s\n", pr.ID, pr.Status, describeAction(pr.Action), pr.VotingEnd, pr.Title)
				}
			})
		},
	}
}

func govParamsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "params [MODULE]",
		Short: "Print a module's parameters as JSON (governance's by default): the object a param-change carries",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			module := "governance"
			if len(args) == 1 {
				module = args[0]
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			raw, err := c.ModuleParams(cmd.Context(), module)
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if err := json.Indent(&out, raw, "", "  "); err != nil {
				return err
			}
			out.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
}

// track names a proposal's voting track.
func track(emergency bool) string {
	if emergency {
		return "emergency"
	}
	return "standard"
}

func printProposal(w io.Writer, p *chain.ProposalRecord) {
	fmt.Fprintf(w, "proposal:\t%d\ntitle:\t%s\nproposer:\t%s\naction:\t%s\ndeposit:\t%s\nsubmitted:\tblock %d\nvoting ends:\tblock %d (%s track)\nstatus:\t%s\n",
		p.ID, p.Title, p.Proposer, describeAction(p.Action), bank.FormatAmount(p.Deposit), p.Submitted, p.VotingEnd, track(p.Emergency), p.Status)
	if p.Action.Kind == "param_change" {
		fmt.Fprintf(w, "params:\t%s\n", p.Action.Params)
	}
	if p.Status != governance.StatusVoting {
		fmt.Fprintf(w, "tally:\tyes %s, no %s, abstain %s\n", bank.FormatAmount(p.Yes), bank.FormatAmount(p.No), bank.FormatAmount(p.Abstain))
	}
	if p.Error != "" {
		fmt.Fprintf(w, "error:\t%s\n", p.Error)
	}
	if len(p.Votes) == 0 {
		fmt.Fprintf(w, "votes:\tnone\n")
		return
	}
	fmt.Fprintf(w, "votes:\t%d (weighed when voting ends)\n", len(p.Votes))
	for _, b := range p.Votes {
		// No tab: a voter's address would widen the column above.
		fmt.Fprintf(w, "  %-7s  %s\n", b.Option, b.Voter)
	}
}

// describeAction is an action in one line.
func describeAction(a chain.ActionRecord) string {
	switch a.Kind {
	case "param_change":
		return "param_change of " + a.Module
	case "set_measurement":
		verb := "allow"
		if a.Allowed != nil && !*a.Allowed {
			verb = "remove"
		}
		return fmt.Sprintf("set_measurement: %s %s build %s", verb, a.Platform, a.Measurement)
	case "freeze_platform":
		verb := "freeze"
		if a.Frozen != nil && !*a.Frozen {
			verb = "unfreeze"
		}
		return fmt.Sprintf("freeze_platform: %s %s", verb, a.Platform)
	case "treasury_spend":
		return fmt.Sprintf("treasury_spend: %s to %s", bank.FormatAmount(uint64(a.Amount)), a.To)
	}
	return a.Kind
}

func permille(p uint64) string {
	return strconv.FormatFloat(float64(p)/10, 'f', -1, 64) + "%"
}
