package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/phala-go/phala/attest"
)

// attestdConfig is the TOML file `phala attestd --config` reads.
type attestdConfig struct {
	// Listen is host:port; default 127.0.0.1:26690.
	Listen string `toml:"listen"`
	// KeyFile holds the service's signing key, created (mode 0600) if
	// missing; relative paths are relative to the config file.
	KeyFile string `toml:"key_file"`
	// KnownCPUs and RevokedCPUs are simulated CPU public keys in hex.
	KnownCPUs   []string `toml:"known_cpus"`
	RevokedCPUs []string `toml:"revoked_cpus"`
	// MaxBodyBytes bounds a request; 0 means the service's default.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
}

const attestdDefaultListen = "127.0.0.1:26690"

const attestdExample = `# phala attestd configuration
listen = "127.0.0.1:26690"
key_file = "attestd-key.json"          # relative to this file; created if missing
known_cpus = ["<hex public key from the worker's sim CPU>"]
revoked_cpus = []`

func attestdCmd(g *globals) *cobra.Command {
	var (
		configFile string
		listen     string
	)
	cmd := &cobra.Command{
		Use:   "attestd",
		Short: "Run the simulated remote attestation service (IAS-like) for sim TEE workers",
		Long: `Run the simulated remote attestation service. It checks quotes from the simulated
CPUs it knows and returns reports signed with its key; a chain trusts that key
from genesis (registry attestation_services). Without --config it uses the key
HOME/attestd/key.json and knows no CPU.

Config file (TOML):

` + attestdExample,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conf := attestdConfig{KeyFile: filepath.Join(g.home, "attestd", "key.json")}
			if configFile != "" {
				c, err := loadAttestdConfig(configFile)
				if err != nil {
					return err
				}
				conf = c
			}
			if cmd.Flags().Changed("listen") || conf.Listen == "" {
				conf.Listen = listen
			}
			key, err := attest.LoadOrCreateKey(conf.KeyFile)
			if err != nil {
				return err
			}
			known, err := parseCPUKeys("known_cpus", conf.KnownCPUs)
			if err != nil {
				return err
			}
			revoked, err := parseCPUKeys("revoked_cpus", conf.RevokedCPUs)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			srv, err := attest.Start(ctx, conf.Listen, attest.ServiceConfig{
				SigningKey:   key,
				KnownCPUs:    known,
				RevokedCPUs:  revoked,
				MaxBodyBytes: conf.MaxBodyBytes,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			pub := hex.EncodeToString(srv.PublicKey())
			err = emit(cmd.OutOrStdout(), g, map[string]any{
				"url": srv.URL(), "listen": srv.Addr(), "public_key": pub, "key_file": conf.KeyFile,
				"known_cpus": len(known), "revoked_cpus": len(revoked),
			}, func(w io.Writer) {
				fmt.Fprintf(w, "Attestation service listening on %s\n", srv.URL())
				fmt.Fprintf(w, "  public key\t%s\n  key file\t%s\n  known CPUs\t%d\n  revoked CPUs\t%d\n", pub, conf.KeyFile, len(known), len(revoked))
			})
			if err != nil {
				return err
			}
			if len(known)+len(revoked) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: no known CPUs: every quote will be refused (set known_cpus in the config file)")
			}
			select {
			case <-ctx.Done():
			case <-srv.Done():
			}
			if err := srv.Close(); err != nil {
				return fmt.Errorf("attestation service stopped: %w", err)
			}
			if !g.json() {
				fmt.Fprintln(cmd.ErrOrStderr(), "attestation service stopped")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "TOML config file (listen, key_file, known_cpus, revoked_cpus, max_body_bytes)")
	cmd.Flags().StringVar(&listen, "listen", attestdDefaultListen, "host:port to listen on; overrides the config file")
	return cmd
}

// loadAttestdConfig reads a config file, refusing unknown settings, and
// resolves a relative key_file against the file's directory.
func loadAttestdConfig(path string) (attestdConfig, error) {
	var c attestdConfig
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("read attestd config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("attestd config %s: unknown setting %q", path, und[0].String())
	}
	if c.KeyFile == "" {
		return c, fmt.Errorf("attestd config %s: key_file is required (a path; the key is created if missing)", path)
	}
	if !filepath.IsAbs(c.KeyFile) {
		c.KeyFile = filepath.Join(filepath.Dir(path), c.KeyFile)
	}
	if c.MaxBodyBytes < 0 {
		return c, fmt.Errorf("attestd config %s: max_body_bytes %d is negative", path, c.MaxBodyBytes)
	}
	return c, nil
}

func parseCPUKeys(field string, hexKeys []string) ([]ed25519.PublicKey, error) {
	out := make([]ed25519.PublicKey, 0, len(hexKeys))
	for i, s := range hexKeys {
		k, err := attest.ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("attestd config %s[%d]: %w", field, i, err)
		}
		out = append(out, k)
	}
	return out, nil
}
