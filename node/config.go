// Package node runs one Phala-Go chain node: CometBFT with the chain
// application in process. It also lays out node homes for a network.
package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/spf13/viper"
)

// AppConfig is the application's own settings, in HOME/config/phala.toml
// beside CometBFT's config.toml.
type AppConfig struct {
	// LogLevel: debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// LogFormat: text or json.
	LogFormat string `toml:"log_format"`
	// KeepVersions is how many recent state versions stay queryable and
	// provable; 0 keeps all.
	KeepVersions int64 `toml:"keep_versions"`
}

// DefaultAppConfig returns the settings a new home gets.
func DefaultAppConfig() AppConfig {
	return AppConfig{LogLevel: "info", LogFormat: "text", KeepVersions: 100_000}
}

const appConfigHeader = `# Phala-Go application settings. CometBFT's own settings are in config.toml.
`

// AppConfigFile is the path of the application settings in a home.
func AppConfigFile(home string) string { return filepath.Join(home, "config", "phala.toml") }

// LoadAppConfig reads HOME/config/phala.toml; a missing file means defaults.
func LoadAppConfig(home string) (AppConfig, error) {
	c := DefaultAppConfig()
	md, err := toml.DecodeFile(AppConfigFile(home), &c)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read %s: %w", AppConfigFile(home), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("%s: unknown setting %q", AppConfigFile(home), und[0].String())
	}
	return c, nil
}

// WriteAppConfig writes c to HOME/config/phala.toml.
func WriteAppConfig(home string, c AppConfig) error {
	f, err := os.Create(AppConfigFile(home))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(appConfigHeader); err != nil {
		return err
	}
	return toml.NewEncoder(f).Encode(c)
}

// LoadCometConfig reads HOME/config/config.toml the way the cometbft binary
// does, so every CometBFT setting and tool applies unchanged.
func LoadCometConfig(home string) (*cfg.Config, error) {
	c := cfg.DefaultConfig()
	path := filepath.Join(home, "config", "config.toml")
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read %s: %w (run `phala localnet init` or `phala devnet` to create a home)", path, err)
	}
	if err := v.Unmarshal(c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	c.SetRoot(home)
	if err := c.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
