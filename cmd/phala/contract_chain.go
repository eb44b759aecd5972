package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// resolveWorker reads --miner: a worker's hex identity key, or a key name
// whose account operates exactly one current worker.
func resolveWorker(ctx context.Context, g *globals, c *client.Client, s string) (*chainpb.Worker, error) {
	if raw, err := hex.DecodeString(s); err == nil && len(raw) == 32 {
		w, err := c.Worker(ctx, raw)
		if err == nil && w == nil {
			err = fmt.Errorf("no worker has identity key %s; list them with `phala status`", s)
		}
		return w, err
	}
	op, err := resolveAddress(g, s)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a worker's 64-hex-digit identity key nor an operator's key name: %w", s, err)
	}
	ws, err := c.Workers(ctx)
	if err != nil {
		return nil, err
	}
	var found *chainpb.Worker
	for _, w := range ws {
		if bytes.Equal(w.Operator, op[:]) && !w.Retired && len(w.Successor) == 0 {
			if found != nil {
				return nil, fmt.Errorf("%s operates more than one worker; name one by its identity key", s)
			}
			found = w
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%s operates no current worker", s)
	}
	return found, nil
}

// workerKey reads --worker as resolveWorker does and returns the
// worker's identity key.
func workerKey(cmd *cobra.Command, g *globals, worker string) ([]byte, error) {
	c, err := client.New(g.nodeAddr())
	if err != nil {
		return nil, err
	}
	w, err := resolveWorker(cmd.Context(), g, c, worker)
	if err != nil {
		return nil, fmt.Errorf("--worker: %w", err)
	}
	return w.SigningKey, nil
}

// resolveMiners reads a repeated --miner: each WORKER as resolveWorker
// reads it, in order, none twice.
func resolveMiners(ctx context.Context, g *globals, c *client.Client, names []string) ([][]byte, error) {
	if len(names) == 0 {
		return nil, errors.New("--miner is required: name the worker that runs the contract (repeat it for redundant miners)")
	}
	var keys [][]byte
	for i, s := range names {
		w, err := resolveWorker(ctx, g, c, s)
		if err != nil {
			return nil, fmt.Errorf("--miner %s: %w", s, err)
		}
		for j, k := range keys {
			if bytes.Equal(k, w.SigningKey) {
				return nil, fmt.Errorf("--miner %s and --miner %s name the same worker %X", names[j], names[i], k)
			}
		}
		keys = append(keys, w.SigningKey)
	}
	return keys, nil
}

// msgJSON reads --msg: JSON text, or @FILE.
func msgJSON(s, flag string) ([]byte, error) {
	b := []byte(s)
	if len(s) > 0 && s[0] == '@' {
		var err error
		if b, err = os.ReadFile(s[1:]); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
	}
	if len(b) > 0 && !json.Valid(b) {
		return nil, fmt.Errorf(`%s is not JSON; a message names its handler, for example '{"transfer":{"to":"phala1...","amount":5}}'`, flag)
	}
	return b, nil
}

func parseInstance(s string) (crypto.ContractID, error) {
	id, err := crypto.ParseContractID(s)
	if err != nil {
		return id, fmt.Errorf("instance: %w (use the phalac1… id `phala contract deploy` printed)", err)
	}
	return id, nil
}

func contractChainCmds(g *globals) []*cobra.Command {
	var df txFlags
	var miners []string
	var initArgs string
	var wait time.Duration
	deploy := &cobra.Command{
		Use:   "deploy FILE.wasm --miner WORKER [--miner WORKER ...] --from NAME [--init JSON]",
		Short: "Publish a contract's code and create an instance run by one miner or several redundant ones",
		Long: `Publish FILE.wasm on chain (compressed; the code and --init are public) and create
an instance that WORKER runs: a worker's identity key, or the key name of its
operator. Repeat --miner for redundant miners (up to ` + strconv.Itoa(contracts.MaxMiners) + `): every one executes
every input alike, and their state checkpoints are compared on chain. The
gatekeepers then derive the contract's key and hand it to the miners, which
instantiate the contract and run its initialiser; deploy waits for that (as
its first miner with an endpoint reports it) and prints the instance id.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			code, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			init, err := msgJSON(initArgs, "--init")
			if err != nil {
				return err
			}
			key, opts, err := df.signer(g)
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			keys, err := resolveMiners(ctx, g, c, miners)
			if err != nil {
				return err
			}
			id, res, err := c.DeployContract(ctx, key, code, keys, init, opts)
			if err != nil {
				return err
			}
			if !g.json() {
				fmt.Fprintf(cmd.OutOrStdout(), "deployed in block %d (tx %s)\ninstance:\t%s\nwaiting for the gatekeepers to key it ...\n", res.Height, res.Hash, id)
			}
			ct, err := c.WaitKeyed(ctx, id, wait)
			if err != nil {
				return err
			}
			ans, err := waitInstantiated(ctx, c, key, id, wait)
			if err != nil {
				return err
			}
			out := map[string]any{"instance": id.String(), "height": res.Height, "tx": res.Hash, "miners": hexList(ct.Miners),
				"code_hash": hex.EncodeToString(ct.CodeHash), "public_key": hex.EncodeToString(ct.PublicKey), "state_root": hex.EncodeToString(ans.StateRoot)}
			return emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				fmt.Fprintf(w, "keyed by gatekeeper %s in block %d; the miner ran the initialiser\ncode hash:\t%X\n",
					shortHex(hex.EncodeToString(ct.KeyedBy)), ct.KeyedHeight, ct.CodeHash)
				printMiners(w, ct)
				fmt.Fprintf(w, "state root:\t%X (block %d)\n", ans.StateRoot, ans.Height)
			})
		},
	}
	df.register(deploy)
	deploy.Flags().StringArrayVar(&miners, "miner", nil, "a worker that runs the contract: identity key (hex) or its operator's key name; repeat for redundant miners (required)")
	deploy.Flags().StringVar(&initArgs, "init", "", "initialiser arguments, JSON or @FILE (public)")
	deploy.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the key and the initialiser")
	deploy.MarkFlagRequired("miner")

	var rf txFlags
	var newMiners []string
	reassign := &cobra.Command{
		Use:   "reassign INSTANCE --miner WORKER [--miner WORKER ...] --from NAME",
		Short: "Replace an instance's miners (its deployer only)",
		Long: `Give INSTANCE the miners named by --miner (repeat it for redundant miners; each a
worker's identity key or its operator's key name), as its deployer (--from).
Miners that stay keep running it; added ones receive the contract's key from a
gatekeeper and recover its state from the latest encrypted checkpoint on chain
and the inputs ordered since; removed ones stop and erase it. The chain refuses
the transaction if --from did not deploy the instance (contracts/9).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, err := parseInstance(args[0])
			if err != nil {
				return err
			}
			key, opts, err := rf.signer(g)
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			keys, err := resolveMiners(ctx, g, c, newMiners)
			if err != nil {
				return err
			}
			res, err := c.ReassignContract(ctx, key, id, keys, opts)
			if err != nil {
				return err
			}
			// The record as of the committed block: the new miners, and
			// which of them still wait for their key.
			ct, err := c.Contract(ctx, id)
			if err != nil || ct == nil {
				ct = &chainpb.Contract{Id: id.Bytes(), Miners: keys}
			}
			out := map[string]any{"instance": id.String(), "height": res.Height, "tx": res.Hash, "code": res.Code,
				"miners": hexList(ct.Miners), "awaiting_key": hexList(ct.AwaitingKey)}
			return emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				fmt.Fprintf(w, "committed in block %d\ntx hash:\t%s\ninstance:\t%s\n", res.Height, res.Hash, id)
				printMiners(w, ct)
			})
		},
	}
	rf.register(reassign)
	reassign.Flags().StringArrayVar(&newMiners, "miner", nil, "a worker to run the contract: identity key (hex) or its operator's key name; repeat for redundant miners (required)")
	reassign.MarkFlagRequired("miner")

	var cf txFlags
	var msg string
	var gas uint64
	var noWait bool
	call := &cobra.Command{
		Use:   "call INSTANCE --from NAME --msg JSON",
		Short: "Send a command sealed to the contract, ordered by the chain",
		Long: `Seal --msg to the contract's public key (only its miner can open it, and only
as this transaction), send it, and wait for the miner's receipt: the command's
output, or why it failed. Nothing readable goes on chain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, err := parseInstance(args[0])
			if err != nil {
				return err
			}
			m, err := msgJSON(msg, "--msg")
			if err != nil {
				return err
			}
			if len(m) == 0 {
				return errors.New("--msg is required")
			}
			key, opts, err := cf.signer(g)
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			nonce, res, err := c.CallContract(ctx, key, id, m, gas, opts)
			if err != nil {
				return err
			}
			if noWait {
				return emit(cmd.OutOrStdout(), g, map[string]any{"height": res.Height, "tx": res.Hash, "nonce": nonce}, func(w io.Writer) {
					fmt.Fprintf(w, "ordered in block %d (tx %s, nonce %d)\n", res.Height, res.Hash, nonce)
				})
			}
			rc, err := c.WaitReceipt(ctx, key, id, nonce, wait)
			if err != nil {
				return err
			}
			out := map[string]any{"height": res.Height, "tx": res.Hash, "nonce": nonce, "ok": rc.Ok, "error": rc.Error,
				"output": string(rc.Output), "gas_used": rc.GasUsed, "events": eventsJSON(rc.Events)}
			if err := emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				fmt.Fprintf(w, "ordered in block %d (tx %s)\n", res.Height, res.Hash)
				if rc.Ok {
					fmt.Fprintf(w, "executed: ok, %d gas\n", rc.GasUsed)
				} else {
					fmt.Fprintf(w, "executed: FAILED (%d gas): %s\n", rc.GasUsed, rc.Error)
				}
				if len(rc.Output) > 0 && rc.Ok {
					fmt.Fprintf(w, "output:\t%s\n", rc.Output)
				}
				for _, e := range rc.Events {
					fmt.Fprintf(w, "event:\t%s\n", e)
				}
			}); err != nil {
				return err
			}
			if !rc.Ok {
				return errSilent
			}
			return nil
		},
	}
	cf.register(call)
	call.Flags().StringVar(&msg, "msg", "", `the command, JSON or @FILE: {"HANDLER": {ARGS}} (required)`)
	call.Flags().Uint64Var(&gas, "gas", client.DefaultGas, "gas limit; the fee pays for all of it")
	call.Flags().BoolVar(&noWait, "no-wait", false, "return once the command is in a block, without its receipt")
	call.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the receipt")

	var from, qmsg string
	query := &cobra.Command{
		Use:   "query INSTANCE --from NAME --msg JSON",
		Short: "Ask the contract's miner directly, off chain, sealed and signed",
		Long: `Seal --msg to the miner's identity key, sign it as --from, and send it to the
miner's endpoint. The answer comes back sealed to you and signed by the miner's
registered identity, naming the block and state root it reflects. The
contract decides what --from may see.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseInstance(args[0])
			if err != nil {
				return err
			}
			m, err := msgJSON(qmsg, "--msg")
			if err != nil {
				return err
			}
			kr, err := openKeyring(g)
			if err != nil {
				return err
			}
			k, err := kr.Get(from)
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			ans, err := c.QueryContract(cmd.Context(), k.PrivateKey(), id, &pruntimepb.ContractQuery{Payload: m})
			if err != nil {
				return err
			}
			out := map[string]any{"output": json.RawMessage(nil), "error": ans.Error, "height": ans.Height, "state_root": hex.EncodeToString(ans.StateRoot)}
			if json.Valid(ans.Output) {
				out["output"] = json.RawMessage(ans.Output)
			} else if len(ans.Output) > 0 {
				out["output"] = string(ans.Output)
			}
			if err := emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				if ans.Error != "" {
					fmt.Fprintf(w, "refused: %s\n", ans.Error)
				} else {
					fmt.Fprintf(w, "%s\n", ans.Output)
				}
				fmt.Fprintf(w, "(block %d, state root %X; answer signed by the miner's registered identity)\n", ans.Height, ans.StateRoot)
			}); err != nil {
				return err
			}
			if ans.Error != "" {
				return errSilent
			}
			return nil
		},
	}
	query.Flags().StringVar(&from, "from", "", "the key name you ask as (required)")
	query.Flags().StringVar(&qmsg, "msg", "", `the query, JSON or @FILE: {"HANDLER": {ARGS}}`)
	query.MarkFlagRequired("from")
	query.MarkFlagRequired("msg")

	show := &cobra.Command{
		Use:   "show INSTANCE",
		Short: "Show an instance as the chain records it: miners, inputs, checkpoint, discrepancies",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseInstance(args[0])
			if err != nil {
				return err
			}
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			ct, err := c.Contract(cmd.Context(), id)
			if err != nil {
				return err
			}
			if ct == nil {
				return fmt.Errorf("no contract %s on this chain", id)
			}
			var recs []*chainpb.Discrepancy
			if ct.Discrepancies > 0 {
				ds, err := c.Discrepancies(cmd.Context())
				if err != nil {
					return err
				}
				for _, d := range ds {
					if bytes.Equal(d.Contract, ct.Id) {
						recs = append(recs, d)
					}
				}
			}
			out := contractJSON(ct)
			views := make([]client.DiscrepancyStatus, len(recs))
			for i, d := range recs {
				views[i] = client.DiscrepancyView(d)
			}
			out["discrepancy_records"] = views
			return emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				printContract(w, ct)
				for _, d := range recs {
					fmt.Fprintf(w, "  block %d:\tminer %X had state root %X; stored %X by %X (recorded in block %d)\n",
						d.Height, d.Miner, d.StateRoot, d.StoredRoot, d.StoredBy, d.RecordedHeight)
				}
				if n := int(ct.Discrepancies) - len(recs); n > 0 {
					fmt.Fprintf(w, "  (%d older records are no longer listed by the chain)\n", n)
				}
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List every instance on chain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			cs, err := c.Contracts(cmd.Context())
			if err != nil {
				return err
			}
			out := make([]map[string]any, len(cs))
			for i, ct := range cs {
				out[i] = contractJSON(ct)
			}
			return emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				if len(cs) == 0 {
					fmt.Fprintln(w, "no contracts yet; deploy one with `phala contract deploy`")
				}
				for _, ct := range cs {
					printContract(w, ct)
					fmt.Fprintln(w)
				}
			})
		},
	}
	return []*cobra.Command{deploy, reassign, call, query, show, list}
}

// waitInstantiated polls the miner until it reports the instance running.
func waitInstantiated(ctx context.Context, c *client.Client, key []byte, id crypto.ContractID, timeout time.Duration) (*pruntimepb.QueryAnswer, error) {
	deadline := time.Now().Add(timeout)
	for {
		ans, err := c.QueryContract(ctx, key, id, &pruntimepb.ContractQuery{Kind: pruntimepb.ContractQuery_STATUS})
		switch {
		case err == nil && ans.Error == "" && len(ans.StateRoot) > 0:
			return ans, nil
		case err == nil && len(ans.StateRoot) > 0:
			return nil, fmt.Errorf("the miner cannot run contract %s: %s", id, ans.Error)
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New(ans.Error)
			}
			return nil, fmt.Errorf("the miner has not instantiated %s after %s: %w", id, timeout, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func contractJSON(ct *chainpb.Contract) map[string]any {
	id, _ := crypto.ContractIDFromBytes(ct.Id)
	dep, _ := crypto.AddressFromBytes(ct.Deployer)
	var cp any // null before the first checkpoint
	if k := ct.Checkpoint; k != nil {
		cp = map[string]any{"height": k.Height, "inputs": k.Inputs, "state_root": hex.EncodeToString(k.StateRoot), "chunks": k.Chunks,
			"size": k.Size, "miner": hex.EncodeToString(k.Miner), "acks": hexList(k.Acks), "stored_height": k.StoredHeight}
	}
	return map[string]any{"instance": id.String(), "code_hash": hex.EncodeToString(ct.CodeHash), "code_size": ct.CodeSize,
		"deployer": dep.String(), "miners": hexList(ct.Miners), "awaiting_key": hexList(ct.AwaitingKey), "deployed_height": ct.DeployedHeight,
		"keyed": ct.PublicKey != nil, "keyed_by": hex.EncodeToString(ct.KeyedBy), "keyed_height": ct.KeyedHeight,
		"public_key": hex.EncodeToString(ct.PublicKey), "commands": ct.Commands, "inputs": ct.Inputs, "inbox_start": ct.InboxStart,
		"messages_sent": ct.MessagesSent, "checkpoint_interval": ct.CheckpointInterval, "checkpoint": cp, "discrepancies": ct.Discrepancies,
		"key_epoch": ct.KeyEpoch, "key_since": ct.KeySince, "key_rotating": ct.Rekey != nil}
}

func printContract(w io.Writer, ct *chainpb.Contract) {
	id, _ := crypto.ContractIDFromBytes(ct.Id)
	dep, _ := crypto.AddressFromBytes(ct.Deployer)
	fmt.Fprintf(w, "instance:\t%s\ncode:\t%X (%d bytes)\ndeployer:\t%s (block %d)\n", id, ct.CodeHash, ct.CodeSize, dep, ct.DeployedHeight)
	printMiners(w, ct)
	if ct.PublicKey == nil {
		fmt.Fprintf(w, "key:\tnot yet published by the gatekeepers\n")
	} else {
		fmt.Fprintf(w, "key:\tpublished by gatekeeper %s in block %d\n", shortHex(hex.EncodeToString(ct.KeyedBy)), ct.KeyedHeight)
		if ct.KeyEpoch > 0 {
			since := fmt.Sprintf(", the current key since block %d", ct.KeySince)
			if ct.KeySince == 0 {
				since = ""
			}
			fmt.Fprintf(w, "  rotated:\t%d times by its miners%s\n", ct.KeyEpoch, since)
		}
		if ct.KeySince == 0 && ct.Rekey == nil {
			// The chain's mark that a miner holding k_c left (docs/contracts.md).
			fmt.Fprintf(w, "  rotation due:\ta miner that held the key left; a remaining miner rotates it once its checkpoint is stored\n")
		}
		if r := ct.Rekey; r != nil {
			fmt.Fprintf(w, "  rotating:\tto epoch %d by miner %s, commands held until block %d at the latest\n", r.Epoch, shortHex(hex.EncodeToString(r.Miner)), r.Deadline)
		}
	}
	fmt.Fprintf(w, "commands:\t%d\ninputs:\t%d (kept on chain from input %d)\nmessages sent:\t%d\n", ct.Commands, ct.Inputs, ct.InboxStart, ct.MessagesSent)
	if k := ct.Checkpoint; k == nil {
		fmt.Fprintf(w, "checkpoint:\tnone yet (taken at multiples of %d blocks once inputs ran)\n", ct.CheckpointInterval)
	} else {
		fmt.Fprintf(w, "checkpoint:\tblock %d, covering inputs before %d, stored in block %d\n", k.Height, k.Inputs, k.StoredHeight)
		fmt.Fprintf(w, "  state root:\t%X\n  size:\t%d bytes in %d chunks\n  miner:\t%X\n", k.StateRoot, k.Size, k.Chunks, k.Miner)
		if len(k.Acks) == 0 {
			fmt.Fprintf(w, "  acks:\tnone\n")
		}
		for i, a := range k.Acks {
			label := ""
			if i == 0 {
				label = "  acks:"
			}
			fmt.Fprintf(w, "%s\t%X\n", label, a)
		}
	}
	fmt.Fprintf(w, "discrepancies:\t%d\n", ct.Discrepancies)
}

// printMiners lists ct's miners, marking those still waiting for a
// gatekeeper to seal them the contract's key.
func printMiners(w io.Writer, ct *chainpb.Contract) {
	if len(ct.Miners) == 0 {
		fmt.Fprintf(w, "miners:\tnone (reassign it with `phala contract reassign`)\n")
	}
	for i, m := range ct.Miners {
		label := ""
		if i == 0 {
			label = "miners:"
		}
		note := ""
		if containsKey(ct.AwaitingKey, m) {
			note = " (awaiting its key)"
		}
		fmt.Fprintf(w, "%s\t%X%s\n", label, m, note)
	}
	for _, a := range ct.AwaitingKey {
		if !containsKey(ct.Miners, a) {
			fmt.Fprintf(w, "awaiting key:\t%X\n", a)
		}
	}
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// hexList is keys in hex, an empty list rather than null in JSON.
func hexList(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = hex.EncodeToString(k)
	}
	return out
}

func eventsJSON(evs [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(evs))
	for _, e := range evs {
		if json.Valid(e) {
			out = append(out, e)
		}
	}
	return out
}
