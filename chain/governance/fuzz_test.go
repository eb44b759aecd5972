package governance

import (
	"errors"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/proto/chainpb"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeParams: the params_json of a param_change is untrusted. Decoding
// never panics, and whatever it accepts is valid and re-encodes to itself.
func FuzzDecodeParams(f *testing.F) {
	f.Add([]byte(`{"voting_blocks":100,"emergency_voting_blocks":20,"min_deposit":1000000000,"quorum_permille":100,"emergency_threshold_permille":334,"max_open":32}`))
	f.Add([]byte(`{"voting_blocks":1,"emergency_voting_blocks":1,"min_deposit":1,"quorum_permille":1,"emergency_threshold_permille":1,"max_open":1} `))
	f.Add([]byte(`{"voting_blocks":-1}`))
	f.Add([]byte(`{"voting_blocks":1e3}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeParams(b)
		if err != nil {
			if p != (Params{}) {
				t.Fatalf("refused but returned %+v", p)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted invalid %+v: %v", p, err)
		}
		kv := memKV{}
		if err := SetParams(kv, p); err != nil {
			t.Fatal(err)
		}
		q, err := LoadParams(kv)
		if err != nil || q != p {
			t.Fatalf("round trip %+v -> %+v, %v", p, q, err)
		}
	})
}

// FuzzSubmit: a submission decoded from arbitrary bytes is refused with a
// registered error and no write, or stored as a proposal that satisfies
// every rule (and encodes, so EndBlock can save it).
func FuzzSubmit(f *testing.F) {
	for _, m := range []*chainpb.MsgSubmitProposal{
		msg(freeze("sgx")), msg(spend(addr("bob"), 5)), msg(params("staking", `{"a":1}`)), msg(measurement("m")),
		{Title: "\u00e9t\u00e9 \u2603", Deposit: 1e9, Action: freeze("x")}, {Title: "a\tb", Deposit: 1e9, Action: freeze("x")},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m chainpb.MsgSubmitProposal
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		fx := newFixture(t)
		h := fx.hooks()
		h.Check = func(*chainpb.ProposalAction) error { return nil }
		before := fx.kv.snapshot()
		id, err := Submit(fx.kv, addr("alice"), fx.height, &m, h)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("unregistered error %v", err)
			}
			if d := fx.kv.diff(before); len(d) != 0 {
				t.Fatalf("refused (%v) but changed %q", err, d)
			}
			return
		}
		pr, err := Proposal(fx.kv, id)
		if err != nil || pr == nil {
			t.Fatalf("accepted proposal %d unreadable: %v", id, err)
		}
		if len(pr.Title) == 0 || len(pr.Title) > MaxTitleBytes || !utf8.ValidString(pr.Title) {
			t.Fatalf("accepted title %q", pr.Title)
		}
		for _, r := range pr.Title {
			if !unicode.IsPrint(r) {
				t.Fatalf("accepted title %q", pr.Title)
			}
		}
		if pr.Deposit < DefaultParams().MinDeposit || pr.Action.GetKind() == nil || pr.Emergency != (pr.Action.GetFreezePlatform() != nil) {
			t.Fatalf("accepted %v", pr)
		}
		if _, err := proto.Marshal(pr); err != nil {
			t.Fatal(err)
		}
	})
}
