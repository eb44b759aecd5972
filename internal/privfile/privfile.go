// Package privfile keeps small files that hold secrets (a simulated CPU, an
// attestation service key): created once, atomically and without ever
// replacing an existing file, mode 0600 in a 0700 directory; read only if
// they are regular files nobody else can read; decoded strictly.
package privfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// maxSize bounds what Read reads.
const maxSize = 1 << 16

// LoadOrCreate returns the contents of path, first creating it with the
// bytes create returns if it does not exist. Two processes creating the same
// new file at once both end up reading the one that was linked first. what
// names the file in errors ("simulated CPU file").
func LoadOrCreate(path, what string, create func() ([]byte, error)) ([]byte, error) {
	raw, err := Read(path, what)
	if !errors.Is(err, os.ErrNotExist) {
		return raw, err
	}
	body, err := create()
	if err != nil {
		return nil, err
	}
	if err := Create(path, what, body); err != nil {
		return nil, err
	}
	return Read(path, what)
}

// Read reads path, refusing anything but a regular file of mode 0600 or
// stricter.
func Read(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s holds secrets but has mode %#o: run chmod 600 %s", what, path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, maxSize))
}

// Create writes body to a temporary file in path's directory (created mode
// 0700) and links it into place, so path is either absent or complete. An
// existing path is left as it is, not an error: the caller reads it back.
func Create(path, what string, body []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the directory of the %s: %w", what, err)
	}
	tmp, err := os.CreateTemp(dir, ".privfile-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	// Link, unlike rename, never replaces a file another process created
	// in the meantime.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	return nil
}

// DecodeJSON decodes exactly one JSON object into v: unknown fields and
// trailing data are errors.
func DecodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}
