package node

import (
	"log/slog"

	cmtlog "github.com/cometbft/cometbft/libs/log"
)

// cometLogger adapts slog to CometBFT's logger interface.
type cometLogger struct{ l *slog.Logger }

// CometLogger returns a CometBFT logger that writes to l.
func CometLogger(l *slog.Logger) cmtlog.Logger { return cometLogger{l} }

func (c cometLogger) Debug(msg string, kv ...any) { c.l.Debug(msg, kv...) }
func (c cometLogger) Info(msg string, kv ...any)  { c.l.Info(msg, kv...) }
func (c cometLogger) Error(msg string, kv ...any) { c.l.Error(msg, kv...) }
func (c cometLogger) With(kv ...any) cmtlog.Logger {
	return cometLogger{c.l.With(kv...)}
}
