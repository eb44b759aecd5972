//go:build !wasip1

package sdk

import "unsafe"

// Outside wasm there is no pRuntime: the host functions panic. Contracts
// build with GOOS=wasip1 GOARCH=wasm (phala contract build).

const notInPRuntime = "sdk: contracts run inside pRuntime; build with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared"

func hostRead(uint32, unsafe.Pointer, uint32) int32                        { panic(notInPRuntime) }
func hostStorageRead(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { panic(notInPRuntime) }
func hostStorageWrite(unsafe.Pointer, uint32, unsafe.Pointer, uint32)      { panic(notInPRuntime) }
func hostStorageDelete(unsafe.Pointer, uint32)                             { panic(notInPRuntime) }
func hostBlockHeight() int64                                               { panic(notInPRuntime) }
func hostBlockTime() int64                                                 { panic(notInPRuntime) }
func hostRandom(unsafe.Pointer, uint32)                                    { panic(notInPRuntime) }
func hostEmit(unsafe.Pointer, uint32)                                      { panic(notInPRuntime) }
func hostSend(unsafe.Pointer, uint32, unsafe.Pointer, uint32)              { panic(notInPRuntime) }
func hostOutput(unsafe.Pointer, uint32)                                    { panic(notInPRuntime) }
