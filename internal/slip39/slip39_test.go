package slip39

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestVectors runs every official SLIP-0039 vector (testdata/vectors.json, passphrase
// "TREZOR"): the valid ones restore exactly their master secret, the others fail.
func TestVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs [][]json.RawMessage
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 45 {
		t.Fatalf("%d vectors, want the 45 official ones", len(vs))
	}
	valid, invalid := 0, 0
	for _, v := range vs {
		var name, secret string
		var mnemonics []string
		json.Unmarshal(v[0], &name)
		json.Unmarshal(v[1], &mnemonics)
		json.Unmarshal(v[2], &secret)
		t.Run(name, func(t *testing.T) {
			var shares []*Share
			var err error
			for _, m := range mnemonics {
				var s *Share
				if s, err = Parse(m); err != nil {
					break
				}
				if s.Mnemonic() != m {
					t.Errorf("share does not encode back to its words")
				}
				shares = append(shares, s)
			}
			var got []byte
			if err == nil {
				got, err = Combine(shares, "TREZOR")
			}
			if secret == "" {
				invalid++
				if err == nil {
					t.Fatalf("restored %x from shares that must fail", got)
				}
				return
			}
			valid++
			if err != nil || hex.EncodeToString(got) != secret {
				t.Fatalf("got %x, %v; want %s", got, err, secret)
			}
		})
	}
	if valid != 15 || invalid != 30 {
		t.Errorf("%d valid and %d invalid vectors ran, want 15 and 30", valid, invalid)
	}
}

// TestSplitCombine: a 2-of-3 split of 16 and 32 bytes restores from every pair, and not
// from one share, which is told how many more it needs.
func TestSplitCombine(t *testing.T) {
	for _, n := range []int{16, 32} {
		secret := make([]byte, n)
		rand.Read(secret)
		groups, err := Split(secret, "", 1, [][2]int{{2, 3}}, 0, true, func(b []byte) { rand.Read(b) })
		if err != nil {
			t.Fatal(err)
		}
		sh := groups[0]
		for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 0}} {
			a, _ := Parse(sh[pair[0]])
			b, _ := Parse(sh[pair[1]])
			got, err := Combine([]*Share{a, b}, "")
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("pair %v: %x, %v", pair, got, err)
			}
		}
		one, _ := Parse(sh[0])
		if p, err := Check([]*Share{one}); err != nil || p.Done() || p.MembersNeeded[0] != 1 {
			t.Errorf("one share of 2: %+v, %v; want one more member needed", p, err)
		}
		if got, _ := Combine([]*Share{one}, ""); got != nil {
			t.Error("one share of a 2-of-3 restored a secret")
		}
		if len(strings.Fields(sh[0])) != map[int]int{16: 20, 32: 33}[n] {
			t.Errorf("a share of a %d-byte secret has %d words", n, len(strings.Fields(sh[0])))
		}
	}
}

// TestCorrect: one mistyped word (not on the list, or another list word) is found by the
// checksum, and the correction is unique.
func TestCorrect(t *testing.T) {
	secret := make([]byte, 16)
	rand.Read(secret)
	groups, _ := Split(secret, "", 1, [][2]int{{2, 3}}, 0, true, func(b []byte) { rand.Read(b) })
	good := groups[0][0]
	w := strings.Fields(good)
	for _, wrong := range []string{"qqqq", Word((Index(w[7]) + 1) % 1024)} {
		typed := append([]string(nil), w...)
		typed[7] = wrong
		if _, err := Parse(strings.Join(typed, " ")); err == nil {
			t.Fatalf("%q in place 8 parsed", wrong)
		}
		fixes := Correct(strings.Join(typed, " "))
		if len(fixes) != 1 || fixes[0] != good {
			t.Errorf("corrections of %q in place 8: %v", wrong, fixes)
		}
	}
}

// FuzzParse: the share parser never panics, and what it accepts encodes back to the same
// words. Seeded from the vectors.
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vs [][]json.RawMessage
	json.Unmarshal(b, &vs)
	for _, v := range vs {
		var ms []string
		json.Unmarshal(v[1], &ms)
		for _, m := range ms {
			f.Add(m)
		}
	}
	f.Fuzz(func(t *testing.T, m string) {
		s, err := Parse(m)
		if err != nil {
			return
		}
		again, err := Parse(s.Mnemonic())
		if err != nil || again.Mnemonic() != s.Mnemonic() {
			t.Fatalf("a share does not round-trip: %v", err)
		}
	})
}
