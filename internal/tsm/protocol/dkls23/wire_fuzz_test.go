package dkls23

import (
	"bytes"
	"testing"
)

// FuzzParse: every parser of the package refuses what is not its body, and what it accepts
// encodes back to the same bytes (one encoding per message). The first byte picks the parser.
func FuzzParse(f *testing.F) {
	// A real round two and partial, as seeds of the corpus.
	ks := deal(f, 1, 2)
	seeds := setup(f, []int{1, 2})
	var r2 []byte
	digest := make([]byte, 32)
	run(f, ks, []int{1, 2}, seeds, digest, &attack{round2: func(from, to int, m *Round2Private) { r2 = m.Bytes() }})
	f.Add(append([]byte{2}, r2...))
	f.Add([]byte{0})
	f.Add(append([]byte{0}, make([]byte, Round1Len)...))
	f.Add(append([]byte{1}, make([]byte, Round1PrivateLen)...))
	f.Add(append([]byte{3}, make([]byte, PartialLen)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		body := b[1:]
		var out []byte
		switch b[0] % 4 {
		case 0:
			if m, err := ParseRound1(body); err == nil {
				out = m.Bytes()
			}
		case 1:
			if m, err := ParseRound1Private(body); err == nil {
				out = m.Bytes()
			}
		case 2:
			if m, err := ParseRound2Private(body); err == nil {
				out = m.Bytes()
			}
		case 3:
			if m, err := ParsePartial(1, body); err == nil {
				out = m.Bytes()
			}
		}
		if out != nil && !bytes.Equal(out, body) {
			t.Fatalf("parser %d: accepted bytes that encode back otherwise", b[0]%4)
		}
	})
}
