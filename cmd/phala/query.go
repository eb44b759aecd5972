package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proof"
)

type accountView struct {
	Address string `json:"address"`
	Balance uint64 `json:"balance"`
	Display string `json:"balance_pha"`
	Nonce   uint64 `json:"nonce"`
}

type eventView struct {
	Index   uint32 `json:"index"`
	Kind    string `json:"kind"`
	Sender  string `json:"sender,omitempty"`
	Topic   string `json:"topic,omitempty"`
	Payload string `json:"payload,omitempty"`
}

type eventLogView struct {
	Height     int64       `json:"height"`
	StateRoot  string      `json:"state_root"`
	VerifiedBy int64       `json:"verified_against_header"`
	Events     []eventView `json:"events"`
}

func queryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "query", Aliases: []string{"q"}, Short: "Read chain state"}
	account := func(use, short string, withNonce bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ADDRESS|KEY",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				addr, err := resolveAddress(g, args[0])
				if err != nil {
					return err
				}
				c, err := client.New(g.nodeAddr())
				if err != nil {
					return err
				}
				acc, err := c.Account(cmd.Context(), addr)
				if err != nil {
					return err
				}
				v := accountView{Address: addr.String(), Balance: acc.Balance, Display: bank.FormatAmount(acc.Balance), Nonce: acc.Nonce}
				return emit(cmd.OutOrStdout(), g, v, func(w io.Writer) {
					if !withNonce {
						fmt.Fprintln(w, v.Display)
						return
					}
					fmt.Fprintf(w, "address:\t%s\nbalance:\t%s\nnext nonce:\t%d\n", v.Address, v.Display, v.Nonce)
				})
			},
		}
	}
	eventlog := &cobra.Command{
		Use:   "eventlog HEIGHT",
		Short: "Show a block's worker event log, checked against the next header's app hash",
		Long: "Show a block's worker event log. The log is checked against the app hash in the header of HEIGHT+1 as served by --node; " +
			"pRuntime does the same with a light-client-verified header.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || h < 1 {
				return fmt.Errorf("HEIGHT must be a block number ≥ 1, got %q", args[0])
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			log, err := c.EventLog(cmd.Context(), h)
			if err != nil {
				return err
			}
			hdr, err := c.Header(cmd.Context(), h+1)
			if err != nil {
				return fmt.Errorf("the log of block %d is committed in header %d, which is not available yet: %w", h, h+1, err)
			}
			evs, err := proof.VerifyEventLog(hdr, log)
			if err != nil {
				return err
			}
			v := eventLogView{Height: h, StateRoot: fmt.Sprintf("%X", log.StateRoot), VerifiedBy: hdr.Height, Events: []eventView{}}
			for _, ev := range evs {
				ev := ev
				e := eventView{Index: ev.Index, Kind: "unknown"}
				if in := ev.GetIngress(); in != nil {
					sender, _ := crypto.AddressFromBytes(in.Sender)
					e.Kind, e.Sender, e.Topic = "ingress", sender.String(), in.Topic
					if utf8.Valid(in.Payload) {
						e.Payload = string(in.Payload)
					} else {
						e.Payload = "0x" + hex.EncodeToString(in.Payload)
					}
				}
				v.Events = append(v.Events, e)
			}
			return emit(cmd.OutOrStdout(), g, v, func(w io.Writer) {
				fmt.Fprintf(w, "block %d: %d events (match header %d app hash)\n", h, len(v.Events), hdr.Height)
				for _, e := range v.Events {
					fmt.Fprintf(w, "  #%d\t%s\t%s\t%s\t%q\n", e.Index, e.Kind, e.Sender, e.Topic, e.Payload)
				}
			})
		},
	}
	cmd.AddCommand(
		account("balance", "Show an account's PHA balance", false),
		account("account", "Show an account's balance and next nonce", true),
		eventlog,
	)
	return cmd
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the network's height, chain id, phase, validators, gatekeepers, root key era, workers and responsiveness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), g, st, func(w io.Writer) {
				fmt.Fprintf(w, "chain id:\t%s\nheight:\t%d\nblock time:\t%s\napp hash:\t%s\nphase:\t%s\ncatching up:\t%v\nvalidators:\t%d\n",
					st.ChainID, st.Height, st.BlockTime.Format("2006-01-02 15:04:05 MST"), st.AppHash, st.Phase, st.CatchingUp, len(st.Validators))
				for _, v := range st.Validators {
					fmt.Fprintf(w, "  %s\tpower %d\n", v.Address, v.VotingPower)
				}
				printWorkers(w, st)
			})
		},
	}
}

func printWorkers(w io.Writer, st *client.Status) {
	// After the launch the era's set holds the root key (printEra); the
	// launch's election is history.
	if st.Launch != nil && st.Era == nil {
		fmt.Fprintf(w, "gatekeepers:\t%d (election round %d", len(st.Launch.Gatekeepers), st.Launch.Round)
		if st.Phase != "launched" && st.Launch.Deadline > 0 {
			fmt.Fprintf(w, ", confirm by block %d", st.Launch.Deadline)
		}
		fmt.Fprintln(w, ")")
		for _, g := range st.Launch.Gatekeepers {
			state := "awaiting the root key"
			if g.Confirmed {
				state = "holds the root key"
			}
			fmt.Fprintf(w, "  %s\tbacking %s\t%s\n", shortHex(g.Worker), bank.FormatAmount(g.Backing), state)
		}
	}
	printEra(w, st.Era)
	if len(st.Workers) > 0 {
		fmt.Fprintf(w, "workers:\t%d\n", len(st.Workers))
	}
	for _, wk := range st.Workers {
		expiry := "never"
		if wk.Expires != nil {
			expiry = wk.Expires.Format("2006-01-02 15:04 MST")
		}
		note := ""
		switch {
		case wk.Retired:
			note = "\tretired"
		case wk.RenewedBy != "":
			note = "\trenewed by " + shortHex(wk.RenewedBy)
		case wk.Genesis:
			note = "\tgenesis"
		case wk.Renews != "":
			note = "\trenews " + shortHex(wk.Renews)
		}
		switch {
		case wk.Discrepancies == 1:
			note += "\t1 discrepancy"
		case wk.Discrepancies > 1:
			note += fmt.Sprintf("\t%d discrepancies", wk.Discrepancies)
		}
		fmt.Fprintf(w, "  %s\t%s\tmeasurement %s\texpires %s%s\n", shortHex(wk.Worker), wk.Platform, shortHex(wk.Measurement), expiry, note)
	}
	if len(st.Discrepancies) > 0 {
		fmt.Fprintf(w, "discrepancies:\t%d (a redundant miner's checkpoint root differed from the stored one)\n", len(st.Discrepancies))
	}
	for _, d := range st.Discrepancies {
		fmt.Fprintf(w, "  %s\tblock %d\tminer %s root %s\tstored %s by %s\n",
			d.Contract, d.Height, shortHex(d.Miner), shortHex(d.StateRoot), shortHex(d.StoredRoot), shortHex(d.StoredBy))
	}
	printResponsiveness(w, st.Responsiveness)
	if r := st.Rewards; r != nil {
		fmt.Fprintf(w, "rewards:\tera %d (%s): minted %s for stakers (%.2f%%/year on %s staked), paid %s from the miner pool and %s of fees by work; %s minted since genesis\n",
			r.Era, r.Elapsed.Round(time.Second), bank.FormatAmount(r.Minted), float64(r.InflationPPB)/1e7, bank.FormatAmount(r.Staked),
			bank.FormatAmount(r.MinerPool), bank.FormatAmount(r.Fees), bank.FormatAmount(r.TotalMinted))
		accts := make([]string, 0, len(r.Paid))
		for a := range r.Paid {
			accts = append(accts, a)
		}
		sort.Strings(accts)
		for _, a := range accts {
			fmt.Fprintf(w, "  %s\t%s\n", a, bank.FormatAmount(r.Paid[a]))
		}
	}
}

// plural is n followed by one or many.
func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// printEra prints the current root key's era and the rotation in progress.
func printEra(w io.Writer, e *client.EraStatus) {
	if e == nil {
		return
	}
	fmt.Fprintf(w, "root key era:\t%d (current since block %d; %s, %s)\n", e.Era, e.Since,
		plural(e.Rotations, "completed rotation", "completed rotations"), plural(e.Expired, "expired attempt", "expired attempts"))
	fmt.Fprintf(w, "root public key:\t%s\n", shortHex(e.RootPublicKey))
	fmt.Fprintf(w, "era gatekeepers:\t%d\n", len(e.Gatekeepers))
	for _, g := range e.Gatekeepers {
		fmt.Fprintf(w, "  %s\tbacking %s\tholds the root key\n", shortHex(g.Worker), bank.FormatAmount(g.Backing))
	}
	r := e.Rotation
	if r == nil {
		fmt.Fprintln(w, "rotation:\tnone in progress")
		return
	}
	fmt.Fprintf(w, "rotation:\tto era %d, attempt %d (started at block %d, deadline block %d)\n", r.Era, r.Attempt, r.Started, r.Deadline)
	fmt.Fprintf(w, "  leaders:\toutgoing %s\tincoming %s\n", shortHex(r.OutgoingLeader), shortHex(r.IncomingLeader))
	shares := "both in"
	switch {
	case !r.OutgoingShared && !r.IncomingShared:
		shares = "0 of 2 in"
	case !r.OutgoingShared:
		shares = "1 of 2 in (the outgoing leader's is missing)"
	case !r.IncomingShared:
		shares = "1 of 2 in (the incoming leader's is missing)"
	}
	fmt.Fprintf(w, "  shares:\t%s\n", shares)
	if r.KeyDistributed {
		fmt.Fprintf(w, "  new root key:\tdistributed at block %d (%s)\n", r.KeysHeight, shortHex(r.RootPublicKey))
	} else {
		fmt.Fprintln(w, "  new root key:\tnot distributed yet")
	}
	parts := "no part yet"
	if r.Parts > 0 {
		parts = fmt.Sprintf("parts %d of %d", r.PartsReceived, r.Parts)
	}
	state := ""
	if r.StateHeight != 0 {
		state = fmt.Sprintf(" (complete at block %d)", r.StateHeight)
	}
	fmt.Fprintf(w, "  state:\t%s, keys %d of %d%s\n", parts, r.KeysReceived, r.KeysExpected, state)
	fmt.Fprintf(w, "  confirmations:\t%d of %d\n", r.Confirmations, len(r.Incoming))
	for _, g := range r.Incoming {
		state := "not confirmed"
		if g.Confirmed {
			state = "confirmed"
		}
		fmt.Fprintf(w, "    %s\tbacking %s\t%s\n", shortHex(g.Worker), bank.FormatAmount(g.Backing), state)
	}
}

// printResponsiveness prints the last era's responsiveness judgement.
func printResponsiveness(w io.Writer, r *client.ResponsivenessStatus) {
	if r == nil {
		return
	}
	late := 0
	for _, hb := range r.Workers {
		if hb.Unresponsive {
			late++
		}
	}
	fmt.Fprintf(w, "responsiveness:\tera %d, %d heartbeat windows (most: %d by a gatekeeper, %d by a miner); %d of %d judged workers unresponsive\n",
		r.Era, r.Windows, r.MaxGatekeeper, r.MaxMiner, late, len(r.Workers))
	for _, hb := range r.Workers {
		verdict := "responsive"
		if hb.Unresponsive {
			verdict = "unresponsive, slashed " + bank.FormatAmount(hb.Slashed)
		}
		fmt.Fprintf(w, "  %s\t%s\t%d heartbeats\t%s\n", shortHex(hb.Worker), hb.Role, hb.Heartbeats, verdict)
	}
}
