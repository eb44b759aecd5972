//go:build !wasip1

package sdk

import (
	"unsafe"
)

// Outside wasm the host functions are served by the Native runner (see
// native.go), so a contract's handlers can be unit-tested and benchmarked
// with plain `go test`. Called outside Native.Run they panic.

func host() *Native {
	if current == nil {
		panic("sdk: outside pRuntime, contract code runs only inside Native.Init, Command or Query")
	}
	return current
}

func bytesAt(p unsafe.Pointer, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

func hostRead(kind uint32, p unsafe.Pointer, capacity uint32) int32 {
	n := host()
	var v []byte
	switch kind {
	case 0:
		v = n.input
	case 1:
		v = []byte(n.Caller)
	case 2:
		v = []byte(n.Contract)
	}
	copy(bytesAt(p, min(capacity, uint32(len(v)))), v)
	return int32(len(v))
}

func hostStorageRead(kp unsafe.Pointer, kl uint32, vp unsafe.Pointer, vcap uint32) int32 {
	v, ok := host().writes[string(bytesAt(kp, kl))]
	if !ok {
		v, ok = host().Store[string(bytesAt(kp, kl))]
	}
	if !ok || v == nil {
		return -1
	}
	copy(bytesAt(vp, min(vcap, uint32(len(v)))), v)
	return int32(len(v))
}

func hostStorageWrite(kp unsafe.Pointer, kl uint32, vp unsafe.Pointer, vl uint32) {
	host().writes[string(bytesAt(kp, kl))] = append([]byte{}, bytesAt(vp, vl)...)
}

func hostStorageDelete(kp unsafe.Pointer, kl uint32) { host().writes[string(bytesAt(kp, kl))] = nil }
func hostBlockHeight() int64                         { return host().Height }
func hostBlockTime() int64                           { return host().Time.UnixNano() }
func hostRandom(p unsafe.Pointer, n uint32)          { host().rand.Read(bytesAt(p, n)) }

func hostEmit(p unsafe.Pointer, n uint32) {
	host().events = append(host().events, append([]byte(nil), bytesAt(p, n)...))
}

func hostSend(tp unsafe.Pointer, tl uint32, mp unsafe.Pointer, ml uint32) {
	host().messages = append(host().messages, NativeMessage{To: string(bytesAt(tp, tl)), Payload: append([]byte(nil), bytesAt(mp, ml)...)})
}

func hostOutput(p unsafe.Pointer, n uint32) { host().output = append([]byte(nil), bytesAt(p, n)...) }
