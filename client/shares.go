package client

// Shamir shares of the words (SLIP-0039): "any 2 of these 3 sheets restore". The shares
// split the recovery secret (the words' entropy) itself, so the vault, the envelope and
// every key derived from the words stay the same: combining enough shares gives back the
// very words, and the restore goes on as with typed words.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/sharevault/sharevault/internal/mnemonic"
	"github.com/sharevault/sharevault/internal/slip39"
)

// Shares splits the words into count SLIP-0039 shares of which any threshold restore them.
// Each share is a phrase of 20 (12 words) or 33 (24 words) words of SLIP-0039's list.
func (w *Words) Shares(threshold, count int) ([]string, error) {
	if threshold < 2 || threshold > count || count > 16 {
		return nil, fmt.Errorf("shares %d of %d: want 2 to 16 shares and a threshold of at least 2", threshold, count)
	}
	b := w.s.Bytes()
	if len(b) != 16 && len(b) != 32 {
		return nil, fmt.Errorf("shares are made of 12 or 24 words, not %d", w.Count())
	}
	groups, err := slip39.Split(b, "", 1, [][2]int{{threshold, count}}, 0, true, func(p []byte) { rand.Read(p) })
	if err != nil {
		return nil, err
	}
	return groups[0], nil
}

// shareWords returns the words of a typed share, as a sheet is copied: numbers ("7.",
// "7)") and punctuation between words are dropped, case is ignored.
func shareWords(typed string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(strings.ToLower(typed), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		if strings.Trim(f, "0123456789") != "" {
			out = append(out, f)
		}
	}
	return out
}

// LooksLikeShare reports whether typed text is a SLIP-0039 share rather than BIP-39 words:
// 20 or 33 words, all but at most one of them on SLIP-0039's list.
func LooksLikeShare(typed string) bool {
	f := shareWords(typed)
	if len(f) != 20 && len(f) != 33 {
		return false
	}
	unknown := 0
	for _, w := range f {
		if slip39.Index(w) < 0 {
			unknown++
		}
	}
	return unknown <= 1
}

// ErrSameShare: a share was typed twice.
var ErrSameShare = slip39.ErrSameShare

// ShareMember returns which member of its set a typed share is (1-based, as on its sheet),
// or 0 if it does not read as a share.
func ShareMember(typed string) int {
	t := strings.Join(shareWords(typed), " ")
	s, err := slip39.Parse(t)
	if err != nil {
		fixed := slip39.Correct(t)
		if len(fixed) != 1 {
			return 0
		}
		s, _ = slip39.Parse(fixed[0])
	}
	return s.MemberIndex + 1
}

// ShareFix says that a word of a typed share was corrected.
type ShareFix struct {
	Share, Word int // 1-based
}

// CombineShares reads typed shares (leniently: four letters of a word do, and one wrong
// word in a share is corrected by its checksum when only one correction fits) and, once
// there are enough, returns the words they restore. Until then it returns how many more
// shares are needed. Shares that do not belong together are an error, in one line.
func CombineShares(typed []string) (words string, more int, fixes []ShareFix, err error) {
	var shares []*slip39.Share
	for i, t := range typed {
		t = strings.Join(shareWords(t), " ")
		s, perr := slip39.Parse(t)
		if perr != nil {
			fixed := slip39.Correct(t)
			if len(fixed) != 1 {
				return "", 0, nil, fmt.Errorf("share %d: %w", i+1, perr)
			}
			s, _ = slip39.Parse(fixed[0])
			got, want := strings.Fields(t), strings.Fields(fixed[0])
			for j := range want {
				if slip39.Index(got[j]) != slip39.Index(want[j]) {
					fixes = append(fixes, ShareFix{Share: i + 1, Word: j + 1})
				}
			}
		}
		shares = append(shares, s)
	}
	p, err := slip39.Check(shares)
	if err != nil {
		return "", 0, fixes, err
	}
	if !p.Done() {
		more = p.GroupsNeeded
		for _, n := range p.MembersNeeded {
			more = max(more, n)
		}
		return "", more, fixes, nil
	}
	secret, err := slip39.Combine(shares, "")
	if err != nil {
		return "", 0, fixes, err
	}
	defer clear(secret)
	s, err := mnemonic.FromEntropy(secret)
	if err != nil {
		return "", 0, fixes, errors.New("the shares restore a secret that is not a phrase's")
	}
	defer s.Wipe()
	return strings.Join(s.Words(), " "), 0, fixes, nil
}

// ShareKit returns the PDF for one share: its words in a numbered grid, which share it is
// and how many restore, the vault, the date. It holds the share: print it, never store it.
func ShareKit(share string, index, threshold, count int, keys *Keys, vaultURL string, madeUnix int64) ([]byte, error) {
	date := time.Unix(madeUnix, 0).UTC()
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetTitle(fmt.Sprintf("sharevault recovery share %d of %d", index, count), true)
	pdf.SetCompression(true)
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 20)
	pdf.CellFormat(0, 12, fmt.Sprintf("sharevault recovery share %d of %d", index, count), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.CellFormat(0, 6, fmt.Sprintf("Any %d of the %d shares restore your key share. Made %s.", threshold, count, date.Format("2 January 2006")), "", 1, "L", false, 0, "")
	pdf.Ln(4)
	pdf.SetFont("Courier", "B", 12)
	w := strings.Fields(share)
	rows := (len(w) + 2) / 3
	for r := range rows {
		for c := range 3 {
			if i := c*rows + r; i < len(w) {
				pdf.CellFormat(60, 8, fmt.Sprintf("%2d. %s", i+1, w[i]), "1", 0, "L", false, 0, "")
			}
		}
		pdf.Ln(8)
	}
	pdf.Ln(4)
	vaultBox(pdf, keys, vaultURL)
	pdf.Ln(4)
	pdf.SetFont("Helvetica", "", 10)
	pdf.MultiCell(0, 5, strings.Join([]string{
		fmt.Sprintf("This sheet alone restores nothing; any %d of the %d together restore everything. Keep each sheet in a different safe place, such as with different trusted people.", threshold, count),
		"If you lose your phone: install the app, choose Restore, and type the shares one after another. One wrong word in a share is found and fixed for you.",
		"If a passphrase was used (above), you need it too. It is on no sheet.",
	}, "\n\n"), "", "L", false)
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// ShareList is a list of shares, for bindings (gomobile binds no slices of strings).
type ShareList struct{ items []string }

// Len is the number of shares.
func (l *ShareList) Len() int { return len(l.items) }

// At is share i, from 0.
func (l *ShareList) At(i int) string { return l.items[i] }

// ShareList is Shares for bindings.
func (w *Words) ShareList(threshold, count int) (*ShareList, error) {
	s, err := w.Shares(threshold, count)
	if err != nil {
		return nil, err
	}
	return &ShareList{s}, nil
}

// ShareProgress is what RestoreFromShares found: the words, once enough shares are typed,
// or how many more are needed; and which words were corrected ("share 2, word 7; …").
type ShareProgress struct {
	Words     string
	More      int
	Corrected string
}

// RestoreFromShares is CombineShares for bindings: the typed shares, separated by empty
// lines.
func RestoreFromShares(typed string) (*ShareProgress, error) {
	var blocks []string
	for _, b := range strings.Split(strings.ReplaceAll(typed, "\r\n", "\n"), "\n\n") {
		if strings.TrimSpace(b) != "" {
			blocks = append(blocks, b)
		}
	}
	words, more, fixes, err := CombineShares(blocks)
	if err != nil {
		return nil, err
	}
	p := &ShareProgress{Words: words, More: more}
	var fs []string
	for _, f := range fixes {
		fs = append(fs, fmt.Sprintf("share %d, word %d", f.Share, f.Word))
	}
	p.Corrected = strings.Join(fs, "; ")
	return p, nil
}
