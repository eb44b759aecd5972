package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	abci "github.com/cometbft/cometbft/abci/types"
	cfg "github.com/cometbft/cometbft/config"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/store"
)

// Options adjusts Start. The zero value runs the Phala-Go chain app with
// logs per HOME/config/phala.toml on stderr.
type Options struct {
	// Logger receives CometBFT's and the app's logs.
	Logger *slog.Logger
	// App replaces the chain application (benchmarks run CometBFT's kvstore
	// through the same node).
	App abci.Application
	// Comet, if set, adjusts the loaded CometBFT config before start.
	Comet func(*cfg.Config)
}

// Node is a running chain node.
type Node struct {
	Home   string
	Config *cfg.Config
	cmt    *nm.Node
	app    *chain.App // nil when Options.App was given
}

// Start loads the node at home and starts it. It returns once CometBFT is
// running; blocks follow.
func Start(ctx context.Context, home string, opts Options) (*Node, error) {
	conf, err := LoadCometConfig(home)
	if err != nil {
		return nil, err
	}
	if opts.Comet != nil {
		opts.Comet(conf)
	}
	if !conf.Mempool.Recheck && opts.App == nil {
		// CheckTx keeps a check state that each commit resets and the
		// recheck rebuilds (docs/decisions/0003-check-state.md).
		return nil, fmt.Errorf("%s: mempool.recheck is false; Phala-Go needs it true", home)
	}
	claimPrometheus(conf)
	appConf, err := LoadAppConfig(home)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger, err = NewLogger(os.Stderr, appConf.LogLevel, appConf.LogFormat)
		if err != nil {
			return nil, err
		}
	}
	n := &Node{Home: home, Config: conf}
	app := opts.App
	if app == nil {
		n.app, err = chain.NewApp(chain.Config{
			DataDir: conf.DBDir(),
			Tree:    store.TreeConfig{KeepVersions: appConf.KeepVersions},
			Logger:  logger.With("module", "phala"),
		})
		if err != nil {
			return nil, err
		}
		app = n.app
	}
	nodeKey, err := p2p.LoadNodeKey(conf.NodeKeyFile())
	if err != nil {
		n.closeApp()
		return nil, fmt.Errorf("load node key: %w", err)
	}
	pv := privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	n.cmt, err = nm.NewNode(ctx, conf, pv, nodeKey,
		proxy.NewConsensusSyncLocalClientCreator(app),
		nm.DefaultGenesisDocProviderFunc(conf),
		cfg.DefaultDBProvider,
		nm.DefaultMetricsProvider(conf.Instrumentation),
		CometLogger(logger),
	)
	if err != nil {
		n.closeApp()
		return nil, fmt.Errorf("create node at %s: %w", home, err)
	}
	if err := n.cmt.Start(); err != nil {
		n.closeApp()
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("start node at %s: %w (another program holds a port: stop it or choose another --base-port)", home, err)
		}
		return nil, fmt.Errorf("start node at %s: %w", home, err)
	}
	return n, nil
}

func (n *Node) closeApp() {
	if n.app != nil {
		n.app.Close()
	}
}

// Stop stops CometBFT and closes the application's database.
func (n *Node) Stop() error {
	var err error
	if n.cmt.IsRunning() {
		err = n.cmt.Stop()
		n.cmt.Wait()
	}
	n.closeApp()
	return err
}

// CometBFT registers its metrics in Prometheus's global registry, which
// refuses a second registration. Only the first node of a process exports
// metrics; further in-process nodes (tests, benchmarks) run without.
var (
	promMu      sync.Mutex
	promClaimed bool
)

func claimPrometheus(conf *cfg.Config) {
	promMu.Lock()
	defer promMu.Unlock()
	if !conf.Instrumentation.Prometheus {
		return
	}
	if promClaimed {
		conf.Instrumentation.Prometheus = false
		return
	}
	promClaimed = true
}

// Comet is the underlying CometBFT node.
func (n *Node) Comet() *nm.Node { return n.cmt }

// App is the chain application, or nil if Options.App replaced it.
func (n *Node) App() *chain.App { return n.app }

// RPCURL is the node's CometBFT RPC address as an http URL.
func (n *Node) RPCURL() string { return ListenURL(n.Config.RPC.ListenAddress) }

// ListenURL turns a tcp:// listen address into an http:// URL.
func ListenURL(laddr string) string { return "http://" + strings.TrimPrefix(laddr, "tcp://") }

// NewLogger builds a slog logger at level ("debug", "info", "warn", "error")
// in format ("text" or "json").
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
