package sim

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
)

// MeasurementSize is the length of a simulated measurement (SHA-256).
const MeasurementSize = sha256.Size

// Measure returns the measurement of a build: SHA-256 of its bytes. Tests use
// it to make distinct measurements; a real pRuntime uses MeasureExecutable.
func Measure(build []byte) []byte {
	h := sha256.Sum256(build)
	return h[:]
}

var executableMeasurement = sync.OnceValues(func() ([]byte, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("measure executable: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("measure executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("measure executable %s: %w", path, err)
	}
	return h.Sum(nil), nil
})

// MeasureExecutable returns the measurement of the running program: SHA-256
// of its executable file, as the process started it (os.Executable). It is
// computed once per process and cached, so replacing the file on disk while
// the process runs does not change it. What a real TEE measures in hardware,
// the simulation takes on trust from the file system.
func MeasureExecutable() ([]byte, error) {
	m, err := executableMeasurement()
	return bytes.Clone(m), err
}
