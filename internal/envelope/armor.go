package envelope

// ASCII armor for paper, e-mail and QR codes (docs/envelope.md, "ASCII armor").

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

const (
	armorBegin   = "-----BEGIN SHAREVAULT BACKUP-----"
	armorEnd     = "-----END SHAREVAULT BACKUP-----"
	armorColumns = 64
	// maxArmored bounds what Dearmor reads: the largest envelope, in base64, with its lines.
	maxArmored = (fixedLen+MaxKeyIDLen+trailerLen+MaxPlaintext+TagSize+2)/3*4*(armorColumns+2)/armorColumns + 256
)

// ErrArmor is wrapped by every armor error.
var ErrArmor = errors.New("not a valid armored sharevault backup")

// Armor returns the armored text of an envelope.
func Armor(envelope []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(envelope)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/armorColumns + 2*len(armorBegin) + 4)
	b.WriteString(armorBegin + "\n")
	for len(enc) > 0 {
		n := min(armorColumns, len(enc))
		b.WriteString(enc[:n] + "\n")
		enc = enc[n:]
	}
	b.WriteString(armorEnd + "\n")
	return b.Bytes()
}

// Dearmor returns the envelope bytes of armored text. It does not parse the envelope.
func Dearmor(text []byte) ([]byte, error) {
	if len(text) > maxArmored {
		return nil, fmt.Errorf("%w: larger than any backup", ErrArmor)
	}
	text = bytes.ReplaceAll(bytes.TrimSpace(text), []byte("\r\n"), []byte("\n"))
	lines := bytes.Split(text, []byte("\n"))
	if len(lines) < 3 || string(lines[0]) != armorBegin || string(lines[len(lines)-1]) != armorEnd {
		return nil, fmt.Errorf("%w: missing BEGIN or END line", ErrArmor)
	}
	body := lines[1 : len(lines)-1]
	var enc []byte
	for i, l := range body {
		last := i == len(body)-1
		if len(l) > armorColumns || len(l) == 0 || !last && len(l) != armorColumns {
			return nil, fmt.Errorf("%w: line %d is not %d characters", ErrArmor, i+2, armorColumns)
		}
		enc = append(enc, l...)
	}
	out, err := base64.StdEncoding.Strict().DecodeString(string(enc))
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", ErrArmor)
	}
	if !bytes.Equal(Armor(out), append(text, '\n')) {
		return nil, fmt.Errorf("%w: not canonical", ErrArmor)
	}
	return out, nil
}
