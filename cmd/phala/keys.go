package main

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/keyring"
)

type keyView struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	PubKey  string `json:"pub_key"`
}

func viewKey(k keyring.Key) keyView {
	return keyView{Name: k.Name, Address: k.Address.String(), PubKey: hex.EncodeToString(k.PubKey)}
}

func openKeyring(g *globals) (*keyring.Keyring, error) {
	return keyring.Open(devnet.KeyringDir(g.home))
}

// resolveAddress accepts a bech32 address or the name of a key in the keyring.
func resolveAddress(g *globals, s string) (crypto.Address, error) {
	if a, err := crypto.ParseAddress(s); err == nil {
		return a, nil
	} else if len(s) > len(crypto.AddressPrefix) && s[:len(crypto.AddressPrefix)+1] == crypto.AddressPrefix+"1" {
		return a, err
	}
	kr, err := openKeyring(g)
	if err != nil {
		return crypto.Address{}, err
	}
	k, err := kr.Get(s)
	if err != nil {
		return crypto.Address{}, fmt.Errorf("%q is neither a phala1… address nor a key name: %w", s, err)
	}
	return k.Address, nil
}

func keysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage account keys in HOME/keyring"}
	cmd.AddCommand(&cobra.Command{
		Use:   "add NAME",
		Short: "Create a new key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kr, err := openKeyring(g)
			if err != nil {
				return err
			}
			k, err := kr.Add(args[0])
			if err != nil {
				return err
			}
			v := viewKey(k)
			return emit(cmd.OutOrStdout(), g, v, func(w io.Writer) {
				fmt.Fprintf(w, "created key %s\naddress:\t%s\npublic key:\t%s\n", v.Name, v.Address, v.PubKey)
			})
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kr, err := openKeyring(g)
			if err != nil {
				return err
			}
			keys, err := kr.List()
			if err != nil {
				return err
			}
			views := make([]keyView, 0, len(keys))
			for _, k := range keys {
				views = append(views, viewKey(k))
			}
			return emit(cmd.OutOrStdout(), g, views, func(w io.Writer) {
				if len(views) == 0 {
					fmt.Fprintf(w, "no keys in %s; create one with `phala keys add NAME`\n", kr.Dir())
					return
				}
				fmt.Fprintln(w, "NAME\tADDRESS")
				for _, v := range views {
					fmt.Fprintf(w, "%s\t%s\n", v.Name, v.Address)
				}
			})
		},
	}, &cobra.Command{
		Use:   "show NAME",
		Short: "Show a key's address and public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kr, err := openKeyring(g)
			if err != nil {
				return err
			}
			k, err := kr.Get(args[0])
			if err != nil {
				return err
			}
			v := viewKey(k)
			return emit(cmd.OutOrStdout(), g, v, func(w io.Writer) {
				fmt.Fprintf(w, "name:\t%s\naddress:\t%s\npublic key:\t%s\n", v.Name, v.Address, v.PubKey)
			})
		},
	})
	return cmd
}
