package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
)

// rfcVectors is testdata/rfc9591-ed25519-sha512.json: RFC 9591 Appendix E.1, in the layout
// of the Zcash Foundation's FROST implementation (MIT, testdata/LICENSE-MIT); see
// testdata/README.md.
type rfcVectors struct {
	Config struct {
		MaxParticipants string `json:"MAX_PARTICIPANTS"`
		MinParticipants string `json:"MIN_PARTICIPANTS"`
	}
	Inputs struct {
		ParticipantList []int    `json:"participant_list"`
		GroupSecret     string   `json:"group_secret_key"`
		VerifyingKey    string   `json:"verifying_key_key"`
		Message         string   `json:"message"`
		Coefficients    []string `json:"share_polynomial_coefficients"`
		Shares          []struct {
			Identifier int
			Share      string `json:"participant_share"`
		} `json:"participant_shares"`
	} `json:"inputs"`
	RoundOne struct {
		Outputs []struct {
			Identifier         int
			HidingRandomness   string `json:"hiding_nonce_randomness"`
			BindingRandomness  string `json:"binding_nonce_randomness"`
			HidingNonce        string `json:"hiding_nonce"`
			BindingNonce       string `json:"binding_nonce"`
			HidingCommitment   string `json:"hiding_nonce_commitment"`
			BindingCommitment  string `json:"binding_nonce_commitment"`
			BindingFactorInput string `json:"binding_factor_input"`
			BindingFactor      string `json:"binding_factor"`
		}
	} `json:"round_one_outputs"`
	RoundTwo struct {
		Outputs []struct {
			Identifier int
			SigShare   string `json:"sig_share"`
		}
	} `json:"round_two_outputs"`
	Final struct {
		Sig string
	} `json:"final_output"`
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func same(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if hex.EncodeToString(got) != want {
		t.Errorf("%s:\n got %x\nwant %s", what, got, want)
	}
}

// TestRFC9591Vectors reproduces every value of RFC 9591's FROST(Ed25519, SHA-512) test
// vector byte for byte: the shares from the polynomial, the public key, the nonces and
// commitments from the given randomness, the binding factor inputs and factors, the
// signature shares and the signature.
func TestRFC9591Vectors(t *testing.T) {
	b, err := os.ReadFile("testdata/rfc9591-ed25519-sha512.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Inputs.Shares) != 3 || len(v.RoundOne.Outputs) != 2 || len(v.RoundTwo.Outputs) != 2 {
		t.Fatal("the vector file is not the one expected")
	}
	g := edw{}
	secret := unhex(t, v.Inputs.GroupSecret)
	coeffs := [][]byte{secret}
	for _, c := range v.Inputs.Coefficients {
		coeffs = append(coeffs, unhex(t, c))
	}
	pub := Public{Curve: Ed25519, Threshold: len(coeffs) - 1, PublicKey: g.BaseMult(secret)}
	same(t, "verifying key", pub.PublicKey, v.Inputs.VerifyingKey)
	shares := map[int]*KeyShare{}
	for _, s := range v.Inputs.Shares {
		sh := evalPoly(g, coeffs, s.Identifier)
		same(t, fmt.Sprint("share ", s.Identifier), sh, s.Share)
		pub.Shares = append(pub.Shares, g.BaseMult(sh))
		shares[s.Identifier] = &KeyShare{ID: s.Identifier, Secret: sh}
	}
	if err := pub.Check(); err != nil {
		t.Fatal(err)
	}
	msg := unhex(t, v.Inputs.Message)

	var cs []Commitment
	nonces := map[int]*Nonces{}
	for _, o := range v.RoundOne.Outputs {
		k := shares[o.Identifier]
		k.Public = pub
		n := commitWith(k, unhex(t, o.HidingRandomness), unhex(t, o.BindingRandomness))
		same(t, "hiding nonce", n.hiding, o.HidingNonce)
		same(t, "binding nonce", n.binding, o.BindingNonce)
		same(t, "hiding commitment", n.Commitment.Hiding, o.HidingCommitment)
		same(t, "binding commitment", n.Commitment.Binding, o.BindingCommitment)
		nonces[o.Identifier] = n
		cs = append(cs, n.Commitment)
	}
	st, err := deriveSigning(&pub, msg, cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range v.RoundOne.Outputs {
		same(t, "binding factor", st.rho[o.Identifier], o.BindingFactor)
		input := unhex(t, o.BindingFactorInput)
		if got := frostH1(input); !bytes.Equal(got, st.rho[o.Identifier]) {
			t.Error("H1(binding factor input) is not the binding factor")
		}
		if !bytes.HasPrefix(input, pub.PublicKey) || !bytes.HasSuffix(input, g.ScalarFromInt(o.Identifier)) {
			t.Error("binding factor input is not public key || … || identifier")
		}
	}
	sigShares := map[int][]byte{}
	for _, o := range v.RoundTwo.Outputs {
		z, err := SignShare(shares[o.Identifier], nonces[o.Identifier], msg, cs)
		if err != nil {
			t.Fatal(err)
		}
		same(t, fmt.Sprint("signature share ", o.Identifier), z, o.SigShare)
		sigShares[o.Identifier] = z
	}
	sig, err := Aggregate(&pub, msg, cs, sigShares)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "signature", sig, v.Final.Sig)
	if !ed25519.Verify(pub.PublicKey, msg, sig) {
		t.Error("crypto/ed25519 rejects the signature")
	}
}

// runDKG runs a key generation (or, with old, a refresh) among n in-process parties,
// carrying the messages between them as a transport would, and returns each party's
// result. tamper, if set, may change a message before it is delivered.
func runDKG(t *testing.T, curve Curve, threshold, n int, refresh bool, tamper func(r1 *Round1, r2 *Round2)) ([]*Result, error) {
	t.Helper()
	session := make([]byte, SessionLen)
	rand.Read(session)
	parties := make([]*DKG, n)
	var r1s []*Round1
	for i := range n {
		start := NewDKG
		if refresh {
			start = NewRefresh
		}
		d, m, err := start(DKGParams{Session: session, Curve: curve, Threshold: threshold, Parties: n, ID: i + 1}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		parties[i] = d
		if tamper != nil {
			tamper(m, nil)
		}
		r1s = append(r1s, m)
	}
	inbox := make([][]*Round2, n)
	for i, d := range parties {
		var others []*Round1
		for _, m := range r1s {
			if m.From != i+1 {
				others = append(others, m)
			}
		}
		out, err := d.Round2(others)
		if err != nil {
			return nil, err
		}
		for _, m := range out {
			if tamper != nil {
				tamper(nil, m)
			}
			inbox[m.To-1] = append(inbox[m.To-1], m)
		}
	}
	results := make([]*Result, n)
	for i, d := range parties {
		r, err := d.Finish(inbox[i])
		if err != nil {
			return nil, err
		}
		results[i] = r
	}
	return results, nil
}

func keyShares(results []*Result) []*KeyShare {
	ks := make([]*KeyShare, len(results))
	for i, r := range results {
		ks[i] = &KeyShare{Public: r.Public, ID: i + 1, Secret: r.Secret}
	}
	return ks
}

// subsets returns every subset of 1..n of size k, in order.
func subsets(n, k int) [][]int {
	if k == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for first := 1; first <= n; first++ {
		for _, rest := range subsets(n, k-1) {
			if len(rest) == 0 || rest[0] > first {
				out = append(out, append([]int{first}, rest...))
			}
		}
	}
	return out
}

// sign runs FROST among the parties of set.
func sign(t *testing.T, ks []*KeyShare, set []int, msg []byte, cheat int) ([]byte, error) {
	t.Helper()
	var cs []Commitment
	nonces := map[int]*Nonces{}
	for _, id := range set {
		n, err := Commit(ks[id-1], rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		nonces[id] = n
		cs = append(cs, n.Commitment)
	}
	shares := map[int][]byte{}
	for _, id := range set {
		z, err := SignShare(ks[id-1], nonces[id], msg, cs)
		if err != nil {
			return nil, err
		}
		if id == cheat {
			z = edw{}.AddScalars(z, edw{}.ScalarFromInt(1))
		}
		shares[id] = z
	}
	return Aggregate(&ks[0].Public, msg, cs, shares)
}

// TestDKG: every t-of-n from 2-of-2 to 3-of-3 on both curves gives every party the same
// public package and a share that checks; the shares interpolate to the key; and on
// Ed25519 every signing set of t+1 or more parties signs.
func TestDKG(t *testing.T) {
	for _, curve := range []Curve{Ed25519, Secp256k1} {
		for n := 2; n <= 3; n++ {
			for threshold := 1; threshold < n; threshold++ {
				t.Run(fmt.Sprintf("curve %d, %d-of-%d", curve, threshold+1, n), func(t *testing.T) {
					results, err := runDKG(t, curve, threshold, n, false, nil)
					if err != nil {
						t.Fatal(err)
					}
					ks := keyShares(results)
					for _, k := range ks {
						if err := k.Check(); err != nil {
							t.Fatalf("party %d: %v", k.ID, err)
						}
						if !k.Public.Equal(&ks[0].Public) {
							t.Fatalf("party %d holds another public package", k.ID)
						}
					}
					g := GroupOf(curve)
					for size := threshold + 1; size <= n; size++ {
						for _, set := range subsets(n, size) {
							var x []byte // the key itself, as only a test may form it
							for _, id := range set {
								l, _ := lagrange(g, set, id, 0)
								term := g.MulScalars(l, ks[id-1].Secret)
								if x == nil {
									x = term
								} else {
									x = g.AddScalars(x, term)
								}
							}
							if !bytes.Equal(g.BaseMult(x), ks[0].PublicKey) {
								t.Errorf("set %v does not interpolate to the key", set)
							}
							if curve != Ed25519 {
								continue
							}
							msg := []byte(fmt.Sprint("signed by ", set))
							sig, err := sign(t, ks, set, msg, 0)
							if err != nil || !ed25519.Verify(ks[0].PublicKey, msg, sig) {
								t.Errorf("set %v: %v", set, err)
							}
						}
					}
					if threshold > 0 && curve == Ed25519 && threshold+1 <= n {
						for _, set := range subsets(n, threshold) {
							if _, err := sign(t, ks, set, []byte("too few"), 0); err == nil {
								t.Errorf("set %v of only t parties signed", set)
							}
						}
					}
				})
			}
		}
	}
}

// TestCheatingDealer: a dealer whose value for another party is off, whose commitments
// are altered, or whose proof of knowledge is forged is named by the party it cheats.
func TestCheatingDealer(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(r1 *Round1, r2 *Round2)
	}{
		{"value off by one", func(_ *Round1, r2 *Round2) {
			if r2 != nil && r2.From == 2 && r2.To == 3 {
				r2.Share = edw{}.AddScalars(r2.Share, edw{}.ScalarFromInt(1))
			}
		}},
		{"commitment replaced", func(r1 *Round1, _ *Round2) {
			if r1 != nil && r1.From == 2 {
				r1.Commitments[1] = edw{}.BaseMult(edw{}.ScalarFromInt(7))
			}
		}},
		{"proof of knowledge for another constant", func(r1 *Round1, _ *Round2) {
			if r1 != nil && r1.From == 2 {
				r1.Commitments[0] = edw{}.BaseMult(edw{}.ScalarFromInt(7))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runDKG(t, Ed25519, 1, 3, false, tc.tamper)
			var c *CulpritError
			if !errors.As(err, &c) || c.Party != 2 {
				t.Fatalf("got %v, want party 2 named", err)
			}
		})
	}
}

// TestCheatingSigner: a signature share off by one is named, not aggregated.
func TestCheatingSigner(t *testing.T) {
	results, err := runDKG(t, Ed25519, 1, 3, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sign(t, keyShares(results), []int{1, 3}, []byte("m"), 3)
	var c *CulpritError
	if !errors.As(err, &c) || c.Party != 3 {
		t.Fatalf("got %v, want signer 3 named", err)
	}
}

// TestRefresh: a refresh keeps the public key, changes every share, and the new shares
// sign; a share from before it no longer matches the new public shares.
func TestRefresh(t *testing.T) {
	for _, curve := range []Curve{Ed25519, Secp256k1} {
		results, err := runDKG(t, curve, 1, 3, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		old := keyShares(results)
		deltas, err := runDKG(t, curve, 1, 3, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		next := make([]*KeyShare, 3)
		for i, d := range deltas {
			if next[i], err = ApplyRefresh(old[i], d); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(next[i].Secret, old[i].Secret) || !bytes.Equal(next[i].PublicKey, old[i].PublicKey) {
				t.Fatal("the share did not change, or the key did")
			}
			if !next[i].Public.Equal(&next[0].Public) {
				t.Fatal("parties disagree after the refresh")
			}
		}
		stale := &KeyShare{Public: next[0].Public, ID: 1, Secret: old[0].Secret}
		if err := stale.Check(); !errors.Is(err, ErrShareMismatch) {
			t.Errorf("a pre-refresh share against the new public shares: %v", err)
		}
		if curve == Ed25519 {
			if sig, err := sign(t, next, []int{2, 3}, []byte("after"), 0); err != nil || !ed25519.Verify(next[0].PublicKey, []byte("after"), sig) {
				t.Fatalf("refreshed shares do not sign: %v", err)
			}
		}
	}
}

// TestNoncesUsedOnce: SignShare refuses nonces it has used, and wipes them.
func TestNoncesUsedOnce(t *testing.T) {
	results, _ := runDKG(t, Ed25519, 1, 2, false, nil)
	ks := keyShares(results)
	n1, _ := Commit(ks[0], rand.Reader)
	n2, _ := Commit(ks[1], rand.Reader)
	cs := []Commitment{n1.Commitment, n2.Commitment}
	if _, err := SignShare(ks[0], n1, []byte("a"), cs); err != nil {
		t.Fatal(err)
	}
	if n1.hiding != nil || n1.binding != nil {
		t.Error("nonces not wiped after use")
	}
	if _, err := SignShare(ks[0], n1, []byte("b"), cs); err == nil {
		t.Error("nonces signed twice")
	}
}

// TestFromAdditive: v1's additive n-of-n shares, converted party by party, are one
// Shamir sharing of the same key, and sign.
func TestFromAdditive(t *testing.T) {
	g := edw{}
	var xs, xps [][]byte
	for range 3 {
		x, _ := g.RandomScalar(rand.Reader)
		xs = append(xs, x)
		xps = append(xps, g.BaseMult(x))
	}
	pub, _ := g.AddPoints(xps...)
	ks := make([]*KeyShare, 3)
	for i := range 3 {
		k, err := FromAdditive(Ed25519, i, xs[i], pub, xps)
		if err != nil {
			t.Fatal(err)
		}
		ks[i] = k
	}
	if sig, err := sign(t, ks, []int{1, 2, 3}, []byte("v1"), 0); err != nil || !ed25519.Verify(pub, []byte("v1"), sig) {
		t.Fatalf("converted shares do not sign: %v", err)
	}
}

// TestBadCommitments: a commitment with a torsion component, or the identity, in a
// signing request passes the parser (which takes a request's points by length) and is
// refused by SignShare, naming its signer; the signer's own commitment altered is refused
// too. The same commitments where Unmarshal checks points (a commitment message) do not
// parse.
func TestBadCommitments(t *testing.T) {
	results, err := runDKG(t, Ed25519, 1, 3, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ks := keyShares(results)
	orderTwo := make([]byte, 32) // (0, −1): y = p − 1
	orderTwo[0], orderTwo[31] = 0xec, 0x7f
	for i := 1; i < 31; i++ {
		orderTwo[i] = 0xff
	}
	identity := make([]byte, 32)
	identity[0] = 1
	session := make([]byte, SessionLen)
	for name, bad := range map[string]func(p []byte) []byte{
		"torsion":  func(p []byte) []byte { q, _ := edw{}.AddPoints(p, orderTwo); return q },
		"identity": func([]byte) []byte { return identity },
	} {
		for _, binding := range []bool{false, true} {
			n1, _ := Commit(ks[0], rand.Reader)
			n2, _ := Commit(ks[1], rand.Reader)
			c2 := n2.Commitment
			if binding {
				c2.Binding = bad(c2.Binding)
			} else {
				c2.Hiding = bad(c2.Hiding)
			}
			req, err := (&Message{Type: MsgSignRequest, Session: session, Curve: Ed25519,
				Request: &SignRequest{Message: []byte("m"), Commitments: []Commitment{n1.Commitment, c2}}}).Marshal()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m, err := Unmarshal(req)
			if err != nil {
				t.Fatalf("%s: a request did not parse: %v", name, err)
			}
			_, err = SignShare(ks[0], n1, m.Request.Message, m.Request.Commitments)
			var c *CulpritError
			if !errors.As(err, &c) || c.Party != 2 {
				t.Errorf("%s (binding %v): got %v, want signer 2 named", name, binding, err)
			}
			cm, err := (&Message{Type: MsgCommitment, Session: session, Curve: Ed25519, From: 2, Commitment: &c2}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Unmarshal(cm); err == nil {
				t.Errorf("%s (binding %v): a commitment message with a bad point parsed", name, binding)
			}
		}
	}
	n1, _ := Commit(ks[0], rand.Reader)
	n2, _ := Commit(ks[1], rand.Reader)
	mine := n1.Commitment
	mine.Binding = n2.Commitment.Binding
	if _, err := SignShare(ks[0], n1, []byte("m"), []Commitment{mine, n2.Commitment}); err == nil {
		t.Error("the signer's own commitment, altered, was accepted")
	}
}
