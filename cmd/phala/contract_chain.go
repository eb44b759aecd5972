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
	"time"

	"github.com/spf13/cobra"

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
	var miner, initArgs string
	var wait time.Duration
	deploy := &cobra.Command{
		Use:   "deploy FILE.wasm --miner WORKER --from NAME [--init JSON]",
		Short: "Publish a contract's code and create an instance run by one miner",
		Long: `Publish FILE.wasm on chain (compressed; the code and --init are public) and create
an instance that WORKER runs: a worker's identity key, or the key name of its
operator. The gatekeepers then derive the contract's key and hand it to the
miner, which instantiates the contract and runs its initialiser; deploy waits
for that and prints the instance id.`,
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
			w, err := resolveWorker(ctx, g, c, miner)
			if err != nil {
				return fmt.Errorf("--miner: %w", err)
			}
			id, res, err := c.DeployContract(ctx, key, code, w.SigningKey, init, opts)
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
			out := map[string]any{"instance": id.String(), "height": res.Height, "tx": res.Hash, "miner": hex.EncodeToString(ct.Miner),
				"code_hash": hex.EncodeToString(ct.CodeHash), "public_key": hex.EncodeToString(ct.PublicKey), "state_root": hex.EncodeToString(ans.StateRoot)}
			return emit(cmd.OutOrStdout(), g, out, func(w io.Writer) {
				fmt.Fprintf(w, "keyed by gatekeeper %s in block %d; the miner ran the initialiser\ncode hash:\t%X\nminer:\t\t%X\nstate root:\t%X (block %d)\n",
					shortHex(hex.EncodeToString(ct.KeyedBy)), ct.KeyedHeight, ct.CodeHash, ct.Miner, ans.StateRoot, ans.Height)
			})
		},
	}
	df.register(deploy)
	deploy.Flags().StringVar(&miner, "miner", "", "the worker that runs the contract: identity key (hex) or its operator's key name (required)")
	deploy.Flags().StringVar(&initArgs, "init", "", "initialiser arguments, JSON or @FILE (public)")
	deploy.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the key and the initialiser")
	deploy.MarkFlagRequired("miner")

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
		Short: "Show an instance as the chain records it",
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
			return emit(cmd.OutOrStdout(), g, contractJSON(ct), func(w io.Writer) { printContract(w, ct) })
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
	return []*cobra.Command{deploy, call, query, show, list}
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
	return map[string]any{"instance": id.String(), "code_hash": hex.EncodeToString(ct.CodeHash), "code_size": ct.CodeSize,
		"deployer": dep.String(), "miner": hex.EncodeToString(ct.Miner), "deployed_height": ct.DeployedHeight,
		"keyed": ct.PublicKey != nil, "keyed_by": hex.EncodeToString(ct.KeyedBy), "keyed_height": ct.KeyedHeight,
		"public_key": hex.EncodeToString(ct.PublicKey), "commands": ct.Commands}
}

func printContract(w io.Writer, ct *chainpb.Contract) {
	id, _ := crypto.ContractIDFromBytes(ct.Id)
	dep, _ := crypto.AddressFromBytes(ct.Deployer)
	fmt.Fprintf(w, "instance:\t%s\ncode:\t\t%X (%d bytes)\ndeployer:\t%s (block %d)\nminer:\t\t%X\n", id, ct.CodeHash, ct.CodeSize, dep, ct.DeployedHeight, ct.Miner)
	if ct.PublicKey == nil {
		fmt.Fprintf(w, "key:\t\tnot yet published by the gatekeepers\n")
	} else {
		fmt.Fprintf(w, "key:\t\tpublished by gatekeeper %s in block %d\n", shortHex(hex.EncodeToString(ct.KeyedBy)), ct.KeyedHeight)
	}
	fmt.Fprintf(w, "commands:\t%d\n", ct.Commands)
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
