// Package liveness holds the heartbeat rule the chain and pRuntime share
// (paper 4.10; docs/monitoring.md): a pRuntime posts a heartbeat when it
// executes a block whose height is a multiple of the interval, and the
// chain counts a heartbeat only while it is fresh.
package liveness

// DefaultHeartbeatBlocks is the heartbeat interval when the genesis sets
// none.
const DefaultHeartbeatBlocks = 10

// Due reports whether a pRuntime that has just executed block height posts
// a heartbeat naming it.
func Due(height, interval int64) bool { return interval > 0 && height > 0 && height%interval == 0 }

// Fresh reports whether the chain, at block now, counts a heartbeat naming
// block named: a heartbeat block of the last two intervals (one to produce
// and relay it, one of slack). A pRuntime whose host feeds it later than
// that cannot produce one in time.
func Fresh(named, now, interval int64) bool {
	return Due(named, interval) && named < now && now-named <= 2*interval
}
