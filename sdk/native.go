//go:build !wasip1

package sdk

import (
	"errors"
	"time"

	"github.com/phala-go/phala/internal/detrand"
)

// Native runs a contract's registered handlers in this process, for unit
// tests and benchmarks of contract logic with plain `go test` (in the
// contract's own package). It follows pRuntime's rules: a failed call's
// writes, events and messages are dropped, and queries may not write. It
// does not meter gas or isolate memory: test limits against the VM.
// A Native is not safe for concurrent use, and only one call runs at a time
// in a process.
type Native struct {
	// Caller, Contract, Height and Time are what the next call sees.
	Caller, Contract string
	Height           int64
	Time             time.Time
	// Seed feeds Context.Random (the same stream as in pRuntime).
	Seed []byte
	// Store is the contract state; nil starts empty.
	Store map[string][]byte
	// Events and Messages of the last successful call.
	Events   [][]byte
	Messages []NativeMessage

	input    []byte
	writes   map[string][]byte
	output   []byte
	events   [][]byte
	messages []NativeMessage
	rand     *detrand.Reader
}

// NativeMessage is a message a contract sent.
type NativeMessage struct {
	To      string
	Payload []byte
}

var current *Native

// Init runs the initialiser with args (JSON).
func (n *Native) Init(args []byte) error {
	_, err := n.run(args, false, runInit)
	return err
}

// Command runs a command message ({"name": {...}}) and returns its output.
func (n *Native) Command(msg []byte) ([]byte, error) {
	return n.run(msg, false, func() int32 { return dispatch(commands) })
}

// Query runs a query message and returns its JSON answer.
func (n *Native) Query(msg []byte) ([]byte, error) {
	return n.run(msg, true, func() int32 { return dispatch(queries) })
}

func (n *Native) run(input []byte, readOnly bool, f func() int32) ([]byte, error) {
	if n.Store == nil {
		n.Store = map[string][]byte{}
	}
	n.input, n.writes, n.output, n.events, n.messages = input, map[string][]byte{}, nil, nil, nil
	n.rand = detrand.New(n.Seed)
	current = n
	code := f()
	current = nil
	if code != 0 {
		return nil, errors.New(string(n.output))
	}
	if readOnly && len(n.writes) > 0 {
		return nil, errors.New("a query may not write state")
	}
	for k, v := range n.writes {
		if v == nil {
			delete(n.Store, k)
		} else {
			n.Store[k] = v
		}
	}
	n.Events, n.Messages = n.events, n.messages
	return n.output, nil
}
