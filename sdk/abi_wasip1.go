//go:build wasip1

package sdk

import "unsafe"

// The host functions of pRuntime's VM (module "phala"; see pruntime/vm).

//go:wasmimport phala read
func hostRead(kind uint32, ptr unsafe.Pointer, capacity uint32) int32

//go:wasmimport phala storage_read
func hostStorageRead(kp unsafe.Pointer, kl uint32, vp unsafe.Pointer, vcap uint32) int32

//go:wasmimport phala storage_write
func hostStorageWrite(kp unsafe.Pointer, kl uint32, vp unsafe.Pointer, vl uint32)

//go:wasmimport phala storage_delete
func hostStorageDelete(kp unsafe.Pointer, kl uint32)

//go:wasmimport phala block_height
func hostBlockHeight() int64

//go:wasmimport phala block_time
func hostBlockTime() int64

//go:wasmimport phala random
func hostRandom(ptr unsafe.Pointer, n uint32)

//go:wasmimport phala emit
func hostEmit(ptr unsafe.Pointer, n uint32)

//go:wasmimport phala send
func hostSend(tp unsafe.Pointer, tl uint32, mp unsafe.Pointer, ml uint32)

//go:wasmimport phala output
func hostOutput(ptr unsafe.Pointer, n uint32)

//go:wasmexport phala_init
func phalaInit() int32 { return runInit() }

//go:wasmexport phala_command
func phalaCommand() int32 { return dispatch(commands) }

//go:wasmexport phala_query
func phalaQuery() int32 { return dispatch(queries) }
