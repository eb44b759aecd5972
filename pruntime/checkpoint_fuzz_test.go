package pruntime

import (
	"bytes"
	"strings"
	"testing"
)

// TestCheckpointCarriesUnacceptedMessages: the messages a checkpoint
// carries decode as written, the section is absent when there are none
// (a checkpoint without it decodes as before), and one that names a
// sequence out of order or not yet sent, or a malformed receiver, is
// refused.
func TestCheckpointCarriesUnacceptedMessages(t *testing.T) {
	to := bytes.Repeat([]byte{7}, 20)
	st := checkpointState{Inputs: 9, Sent: 5, Pairs: map[string][]byte{"a": []byte("1")},
		Outgoing: []outgoing{{Seq: 3, To: to, Payload: []byte("x")}, {Seq: 4, To: to, Payload: []byte("")}}}
	b := encodeCheckpoint(st)
	got, err := decodeCheckpoint(b)
	if err != nil || len(got.Outgoing) != 2 || got.Outgoing[0].Seq != 3 || got.Outgoing[1].Seq != 4 ||
		!bytes.Equal(got.Outgoing[0].To, to) || string(got.Outgoing[0].Payload) != "x" {
		t.Fatalf("decoded %+v, %v", got.Outgoing, err)
	}
	plain := encodeCheckpoint(checkpointState{Inputs: 9, Sent: 5, Pairs: st.Pairs})
	if !bytes.HasPrefix(b, plain) || len(b) == len(plain) {
		t.Fatal("the messages are not a section after the pairs")
	}
	if got, err := decodeCheckpoint(plain); err != nil || got.Outgoing != nil {
		t.Fatalf("a checkpoint without messages: %+v, %v", got.Outgoing, err)
	}
	for name, o := range map[string][]outgoing{
		"a sequence not sent yet": {{Seq: 5, To: to}},
		"sequences out of order":  {{Seq: 4, To: to}, {Seq: 3, To: to}},
		"a repeated sequence":     {{Seq: 3, To: to}, {Seq: 3, To: to}},
		"a short receiver":        {{Seq: 3, To: to[:19]}},
	} {
		bad := st
		bad.Outgoing = o
		if _, err := decodeCheckpoint(encodeCheckpoint(bad)); err == nil || !strings.Contains(err.Error(), "message") {
			t.Errorf("a checkpoint with %s decoded (%v)", name, err)
		}
	}
	if _, err := decodeCheckpoint(append(plain, 0)); err == nil {
		t.Error("an empty message section decoded")
	}
}

// FuzzDecodeCheckpoint: a checkpoint's plaintext decodes strictly; what
// decodes encodes back to the same bytes.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(checkpointState{Inputs: 3, Sent: 1, Pairs: map[string][]byte{"a": []byte("1"), "bal/x": {0, 0, 9}}}))
	f.Add(encodeCheckpoint(checkpointState{Pairs: map[string][]byte{}}))
	f.Add(encodeCheckpoint(checkpointState{Inputs: 2, Sent: 4, Pairs: map[string][]byte{"a": nil},
		Outgoing: []outgoing{{Seq: 1, To: make([]byte, 20), Payload: []byte("m")}, {Seq: 3, To: make([]byte, 20)}}}))
	f.Add([]byte(checkpointMagic + "\x01\x00\x02\x01a\x00\x01a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		if again := encodeCheckpoint(st); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x, re-encodes to %x", b, again)
		}
	})
}
