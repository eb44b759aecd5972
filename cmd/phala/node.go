package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/node"
)

// PIDFile is where a running `phala node` records its process id.
func pidFile(home string) string { return filepath.Join(home, "node.pid") }

func nodeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "node",
		Short: "Run one chain node from its home (config/config.toml and config/phala.toml)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := node.Start(cmd.Context(), g.home, node.Options{})
			if err != nil {
				return err
			}
			_ = os.WriteFile(pidFile(g.home), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
			fmt.Fprintf(cmd.ErrOrStderr(), "node %s running; RPC %s\n", n.Config.Moniker, n.RPCURL())
			<-cmd.Context().Done()
			err = n.Stop()
			os.Remove(pidFile(g.home))
			return err
		},
	}
}
