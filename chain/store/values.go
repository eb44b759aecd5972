package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Typed values the modules keep: 8-byte big-endian counters and JSON
// records (parameters, reports).

// Uint64 reads a counter: 0 if absent; what names it in errors.
func Uint64(r Reader, key []byte, what string) (uint64, error) {
	v, err := r.Get(key)
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%s is %d bytes, want 8", what, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetUint64 writes a counter.
func SetUint64(kv KV, key []byte, n uint64) error {
	return kv.Set(key, binary.BigEndian.AppendUint64(nil, n))
}

// LoadJSON reads a JSON record that must exist (a module's parameters,
// written at genesis); what names it in errors.
func LoadJSON[T any](r Reader, key []byte, what string) (T, error) {
	var v T
	b, err := r.Get(key)
	if err != nil || b == nil {
		return v, errors.Join(err, fmt.Errorf("state has no %s", what))
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%s in state are corrupt: %w", what, err)
	}
	return v, nil
}

// SetJSON writes a JSON record.
func SetJSON(kv KV, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return kv.Set(key, b)
}
