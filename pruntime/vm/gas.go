package vm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Deterministic gas. At compile time the code is rewritten so that every
// straight-line region (from a function's entry, or from just after a
// block, loop, if or else, up to and including the next control
// instruction) first charges its instruction count to a mutable i64 global
// exported as "phala_gas":
//
//	global.get G; i64.const c; i64.lt_u; if; i64.const -1; global.set G; unreachable; end
//	global.get G; i64.const c; i64.sub; global.set G
//
// Every loop iteration and every call passes a region start, so a call that
// runs long enough always runs out, at the same instruction on every
// worker. Running out sets the global to -1 before trapping, which is how
// the VM tells it from any other trap. Host functions charge the same
// global. Only the standard instruction set and the extensions Go emits
// (sign extension, saturating truncation, bulk memory, reference types,
// tail calls) are accepted; SIMD, threads and exceptions are refused.

// GasExport is the name of the exported gas global.
const GasExport = "phala_gas"

var errWasm = errors.New("malformed wasm")

type reader struct {
	b   []byte
	pos int
}

func (r *reader) eof() bool { return r.pos >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, fmt.Errorf("%w: unexpected end at byte %d", errWasm, r.pos)
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) u32() (uint32, error) {
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 || n > 5 || v > 0xffffffff {
		return 0, fmt.Errorf("%w: bad u32 at byte %d", errWasm, r.pos)
	}
	r.pos += n
	return uint32(v), nil
}

// sleb skips a signed LEB128 of at most maxBytes bytes.
func (r *reader) sleb(maxBytes int) error {
	for i := 0; i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: overlong integer at byte %d", errWasm, r.pos)
}

func (r *reader) skip(n int) error {
	if n < 0 || r.pos+n > len(r.b) {
		return fmt.Errorf("%w: %d bytes past the end at byte %d", errWasm, n, r.pos)
	}
	r.pos += n
	return nil
}

func appendU32(b []byte, v uint32) []byte { return binary.AppendUvarint(b, uint64(v)) }

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// instrument returns code with gas metering and the exported gas global.
func instrument(code []byte) ([]byte, error) {
	if len(code) < 8 || !bytes.Equal(code[:8], []byte{0, 'a', 's', 'm', 1, 0, 0, 0}) {
		return nil, fmt.Errorf("%w: not a wasm 1.0 binary", errWasm)
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := &reader{b: code, pos: 8}
	for !r.eof() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.pos
		if err := r.skip(int(n)); err != nil {
			return nil, err
		}
		secs = append(secs, section{id, code[start:r.pos]})
	}
	var importedGlobals, definedGlobals uint32
	hasGlobal, hasExport := false, false
	for _, s := range secs {
		switch s.id {
		case 2:
			g, err := countImportedGlobals(s.body)
			if err != nil {
				return nil, err
			}
			importedGlobals = g
		case 6:
			hasGlobal = true
			gr := &reader{b: s.body}
			n, err := gr.u32()
			if err != nil {
				return nil, err
			}
			definedGlobals = n
		case 7:
			hasExport = true
		case 8:
			return nil, errors.New("a start function is not allowed: initialise in phala_init")
		}
	}
	g := importedGlobals + definedGlobals
	out := append([]byte(nil), code[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	newGlobal := []byte{0x7e, 0x01, 0x42, 0x00, 0x0b} // mut i64 = 0
	newExport := appendU32(nil, uint32(len(GasExport)))
	newExport = append(newExport, GasExport...)
	newExport = append(newExport, 0x03)
	newExport = appendU32(newExport, g)
	// Sections keep their order; the global and export sections are
	// created where the order requires if the code has none.
	order := func(id byte) int {
		switch id {
		case 13: // tag, between memory and global
			return 55
		case 12: // data count, before code
			return 95
		}
		return int(id) * 10
	}
	emitMissing := func(before int) {
		if !hasGlobal && before > order(6) {
			emit(6, append(appendU32(nil, 1), newGlobal...))
			hasGlobal = true
		}
		if !hasExport && before > order(7) {
			emit(7, append(appendU32(nil, 1), newExport...))
			hasExport = true
		}
	}
	for _, s := range secs {
		if s.id != 0 {
			emitMissing(order(s.id))
		}
		switch s.id {
		case 6:
			body := appendU32(nil, definedGlobals+1)
			gr := &reader{b: s.body}
			gr.u32()
			body = append(body, s.body[gr.pos:]...)
			emit(6, append(body, newGlobal...))
		case 7:
			er := &reader{b: s.body}
			n, err := er.u32()
			if err != nil {
				return nil, err
			}
			body := appendU32(nil, n+1)
			body = append(body, s.body[er.pos:]...)
			emit(7, append(body, newExport...))
		case 10:
			body, err := instrumentCode(s.body, g)
			if err != nil {
				return nil, err
			}
			emit(10, body)
		default:
			emit(s.id, s.body)
		}
	}
	emitMissing(1 << 30)
	return out, nil
}

func countImportedGlobals(b []byte) (uint32, error) {
	r := &reader{b: b}
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	var globals uint32
	for range n {
		for range 2 { // module and name
			l, err := r.u32()
			if err != nil {
				return 0, err
			}
			if err := r.skip(int(l)); err != nil {
				return 0, err
			}
		}
		kind, err := r.byte()
		if err != nil {
			return 0, err
		}
		switch kind {
		case 0x00: // func
			_, err = r.u32()
		case 0x01: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = skipLimits(r)
			}
		case 0x02: // memory
			err = skipLimits(r)
		case 0x03: // global: valtype, mut
			globals++
			err = r.skip(2)
		default:
			return 0, fmt.Errorf("%w: import kind %d is not supported", errWasm, kind)
		}
		if err != nil {
			return 0, err
		}
	}
	return globals, nil
}

func skipLimits(r *reader) error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flag&1 != 0 {
		_, err = r.u32()
	}
	return err
}

// instrumentCode rewrites every function body of a code section.
func instrumentCode(b []byte, g uint32) ([]byte, error) {
	r := &reader{b: b}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := appendU32(nil, n)
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.pos
		if err := r.skip(int(size)); err != nil {
			return nil, err
		}
		body, err := instrumentBody(b[start:r.pos], g)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

// instruction is one decoded instruction: its bytes and whether it ends a
// metered region, and whether a new region starts after it.
type instruction struct {
	start, end  int
	endsRegion  bool
	opensRegion bool
}

func instrumentBody(body []byte, g uint32) ([]byte, error) {
	r := &reader{b: body}
	// Locals: vec of (count, valtype).
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	for range n {
		if _, err := r.u32(); err != nil {
			return nil, err
		}
		if _, err := r.byte(); err != nil {
			return nil, err
		}
	}
	localsEnd := r.pos
	var ins []instruction
	for !r.eof() {
		in, err := decode(r)
		if err != nil {
			return nil, err
		}
		ins = append(ins, in)
	}
	if len(ins) == 0 || body[ins[len(ins)-1].start] != 0x0b {
		return nil, fmt.Errorf("%w: a function body must end with end", errWasm)
	}
	out := append([]byte(nil), body[:localsEnd]...)
	regionStart := true
	for i, in := range ins {
		if regionStart {
			cost := int64(0)
			for j := i; j < len(ins); j++ {
				cost++
				if ins[j].endsRegion {
					break
				}
			}
			out = appendCharge(out, g, cost)
		}
		out = append(out, body[in.start:in.end]...)
		regionStart = in.opensRegion
	}
	return out, nil
}

func appendCharge(b []byte, g uint32, cost int64) []byte {
	b = append(b, 0x23)
	b = appendU32(b, g)
	b = append(b, 0x42)
	b = appendS64(b, cost)
	b = append(b, 0x54, 0x04, 0x40, 0x42, 0x7f, 0x24) // i64.lt_u; if; i64.const -1; global.set
	b = appendU32(b, g)
	b = append(b, 0x00, 0x0b, 0x23) // unreachable; end; global.get
	b = appendU32(b, g)
	b = append(b, 0x42)
	b = appendS64(b, cost)
	b = append(b, 0x7d, 0x24) // i64.sub; global.set
	return appendU32(b, g)
}

// decode reads one instruction.
func decode(r *reader) (instruction, error) {
	in := instruction{start: r.pos}
	op, err := r.byte()
	if err != nil {
		return in, err
	}
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
		err = skipBlockType(r)
		in.endsRegion, in.opensRegion = true, true
	case op == 0x05: // else
		in.endsRegion, in.opensRegion = true, true
	case op == 0x0b || op == 0x0f || op == 0x00: // end, return, unreachable
		in.endsRegion, in.opensRegion = true, true
	case op == 0x01 || op == 0x1a || op == 0x1b || op == 0xd1: // nop, drop, select, ref.is_null
	case op == 0x0c || op == 0x0d: // br, br_if
		_, err = r.u32()
		in.endsRegion, in.opensRegion = true, true
	case op == 0x0e: // br_table
		var n uint32
		if n, err = r.u32(); err == nil {
			for i := uint32(0); i <= n && err == nil; i++ {
				_, err = r.u32()
			}
		}
		in.endsRegion, in.opensRegion = true, true
	case op == 0x10 || op == 0x12: // call, return_call
		_, err = r.u32()
		in.endsRegion, in.opensRegion = true, true
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
		in.endsRegion, in.opensRegion = true, true
	case op == 0x1c: // select t*
		var n uint32
		if n, err = r.u32(); err == nil {
			err = r.skip(int(n))
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		_, err = r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		_, err = r.u32()
	case op == 0x41:
		err = r.sleb(5)
	case op == 0x42:
		err = r.sleb(10)
	case op == 0x43:
		err = r.skip(4)
	case op == 0x44:
		err = r.skip(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null t
		_, err = r.byte()
	case op == 0xd2: // ref.func
		_, err = r.u32()
	case op == 0xfc:
		var sub uint32
		if sub, err = r.u32(); err != nil {
			break
		}
		switch {
		case sub <= 7: // saturating truncation
		case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
		case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, memory.fill, elem.drop, table.grow/size/fill
			_, err = r.u32()
		default:
			err = fmt.Errorf("instruction 0xfc %d is not supported", sub)
		}
	default:
		err = fmt.Errorf("instruction 0x%02x is not supported (SIMD, threads and exceptions are refused)", op)
	}
	in.end = r.pos
	return in, err
}

func skipBlockType(r *reader) error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	switch c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return nil
	}
	r.pos--
	return r.sleb(5) // a type index as s33
}
