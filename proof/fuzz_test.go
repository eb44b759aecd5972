package proof

import (
	"bytes"
	"errors"
	"testing"

	cmtcrypto "github.com/cometbft/cometbft/api/cometbft/crypto/v1"
	"github.com/cometbft/cometbft/types"
	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/chainpb"
)

func sampleLog() (*chainpb.EventLog, *types.Header) {
	var events [][]byte
	for i, p := range []string{"a", "bb", ""} {
		b, _ := proto.Marshal(&chainpb.WorkerEvent{Height: 9, Index: uint32(i), Kind: &chainpb.WorkerEvent_Ingress{Ingress: &chainpb.IngressMessage{Sender: make([]byte, 20), Topic: "t", Payload: []byte(p)}}})
		events = append(events, b)
	}
	root := bytes.Repeat([]byte{3}, RootSize)
	log := &chainpb.EventLog{Height: 9, StateRoot: root, Events: events}
	return log, &types.Header{Height: 10, AppHash: AppHash(root, EventLogRoot(events))}
}

// FuzzVerifyEventLog feeds arbitrary EventLog bytes, as an untrusted host
// would relay them, against a fixed header. It must never panic, and must
// accept only logs whose hash matches the header.
func FuzzVerifyEventLog(f *testing.F) {
	log, hdr := sampleLog()
	seed, _ := proto.Marshal(log)
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var l chainpb.EventLog
		if err := proto.Unmarshal(raw, &l); err != nil {
			return
		}
		evs, err := VerifyEventLog(hdr, &l)
		if err != nil {
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			if !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrHeight) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !bytes.Equal(AppHash(l.StateRoot, EventLogRoot(l.Events)), hdr.AppHash) || len(evs) != len(l.Events) {
			t.Fatal("accepted a log that does not hash to the header")
		}
	})
}

// FuzzVerifyState feeds arbitrary proof operations, as relayed by an
// untrusted host, against the header of a real IAVL tree. It must never
// panic and must accept only the true value of the key.
func FuzzVerifyState(f *testing.F) {
	tree := iavl.NewMutableTree(iavldb.NewMemDB(), 100, false, iavl.NewNopLogger())
	for _, k := range []string{"a", "b", "c", "d"} {
		tree.Set([]byte(k), []byte("value-"+k))
	}
	root, _, err := tree.SaveVersion()
	if err != nil {
		f.Fatal(err)
	}
	logRoot := EventLogRoot(nil)
	hdr := &types.Header{Height: 2, AppHash: AppHash(root, logRoot)}
	for _, k := range []string{"b", "bb"} {
		p, err := tree.GetVersionedProof([]byte(k), 1)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := p.Marshal()
		f.Add([]byte(k), []byte("value-"+k), b, logRoot)
	}
	f.Fuzz(func(t *testing.T, key, value, iavlProof, lr []byte) {
		ops := &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{{Type: OpIAVL, Key: key, Data: iavlProof}, {Type: OpLogRoot, Data: lr}}}
		if len(value) == 0 {
			value = nil
		}
		sp, err := StateProofFromOps(1, key, value, ops)
		if err != nil {
			return
		}
		if err := VerifyState(hdr, sp); err != nil {
			return
		}
		want, _ := tree.Get(key)
		if !bytes.Equal(want, value) {
			t.Fatalf("accepted value %q for key %q, tree holds %q", value, key, want)
		}
	})
}
