// Package errs gives every rejection the chain can return a stable ABCI
// (codespace, code) pair, so scripts and clients can act on a code instead of
// parsing text. Modules register their errors once, at package init, in their
// api.go; codes never change meaning once released.
package errs

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Error is a registered rejection. Compare with errors.Is; the message a user
// sees comes from Wrapf, which names the offending value.
type Error struct {
	Codespace string
	Code      uint32
	Desc      string
}

func (e *Error) Error() string { return e.Desc }

// Wrapf returns an error that reads "desc: detail" and still matches e with
// errors.Is.
func (e *Error) Wrapf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", e, fmt.Sprintf(format, args...))
}

var (
	mu       sync.Mutex
	registry = map[string]map[uint32]*Error{}
)

// Register records a new error. It panics on a reused (codespace, code) or on
// code 0 or 1 (success and internal), which are reserved.
func Register(codespace string, code uint32, desc string) *Error {
	mu.Lock()
	defer mu.Unlock()
	if code <= 1 {
		panic(fmt.Sprintf("errs: code %d is reserved (codespace %s)", code, codespace))
	}
	if registry[codespace] == nil {
		registry[codespace] = map[uint32]*Error{}
	}
	if prev, ok := registry[codespace][code]; ok {
		panic(fmt.Sprintf("errs: %s/%d registered twice (%q and %q)", codespace, code, prev.Desc, desc))
	}
	e := &Error{Codespace: codespace, Code: code, Desc: desc}
	registry[codespace][code] = e
	return e
}

// CodeInternal is returned for failures that are not the sender's fault.
const CodeInternal = 1

// ABCI maps err to the (codespace, code, log) a response carries. A nil err is
// code 0. An error not registered here is reported as internal, with its text.
func ABCI(err error) (codespace string, code uint32, log string) {
	if err == nil {
		return "", 0, ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Codespace, e.Code, err.Error()
	}
	return "internal", CodeInternal, err.Error()
}

// All returns every registered error, ordered by codespace and code.
func All() []*Error {
	mu.Lock()
	defer mu.Unlock()
	var out []*Error
	for _, m := range registry {
		for _, e := range m {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Codespace != out[j].Codespace {
			return out[i].Codespace < out[j].Codespace
		}
		return out[i].Code < out[j].Code
	})
	return out
}
