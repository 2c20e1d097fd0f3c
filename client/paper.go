package client

// What goes on paper: the SeedQR of the words, the QR of an armored backup, and the
// recovery kit PDF.

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
	"github.com/skip2/go-qrcode"

	"github.com/sharevault/sharevault/internal/mnemonic"
)

// SeedQR returns the digits of the standard SeedQR: each word's BIP-39 index as four
// decimal digits, in order (48 digits for 12 words, 96 for 24).
func (w *Words) SeedQR() string {
	var b strings.Builder
	for _, word := range w.s.Words() {
		fmt.Fprintf(&b, "%04d", mnemonic.Index(word))
	}
	return b.String()
}

// QRText renders data as a QR code for a terminal, in half-block characters. Digits-only
// data is encoded in numeric mode, as SeedQR requires (error correction L).
func QRText(data string) (string, error) {
	q, err := qrcode.New(data, qrcode.Low)
	if err != nil {
		return "", err
	}
	return q.ToSmallString(false), nil
}

// QRPNG renders data as a QR code PNG of the given size in pixels.
func QRPNG(data string, size int) ([]byte, error) {
	q, err := qrcode.New(data, qrcode.Low)
	if err != nil {
		return nil, err
	}
	return q.PNG(size)
}

// RecoveryKit returns the recovery kit PDF: the words in a numbered grid, their SeedQR,
// the vault ID, the date it was made (Unix seconds) and what to do with the sheet. It
// holds the words: print it, never store it.
func RecoveryKit(w *Words, keys *Keys, vaultURL string, madeUnix int64) ([]byte, error) {
	date := time.Unix(madeUnix, 0).UTC()
	png, err := QRPNG(w.SeedQR(), 512)
	if err != nil {
		return nil, err
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetTitle("sharevault recovery kit", true)
	pdf.SetCompression(true)
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 20)
	pdf.CellFormat(0, 12, "sharevault recovery kit", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.CellFormat(0, 6, "Made "+date.Format("2 January 2006"), "", 1, "L", false, 0, "")
	pdf.Ln(4)
	pdf.SetFont("Courier", "B", 13)
	n := w.Count()
	rows := (n + 2) / 3
	for r := 0; r < rows; r++ {
		for c := 0; c < 3; c++ {
			i := c*rows + r + 1
			if i <= n {
				pdf.CellFormat(60, 9, fmt.Sprintf("%2d. %s", i, w.Word(i)), "1", 0, "L", false, 0, "")
			}
		}
		pdf.Ln(9)
	}
	pdf.Ln(4)
	pdf.RegisterImageOptionsReader("seedqr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
	y := pdf.GetY()
	pdf.ImageOptions("seedqr", 10, y, 60, 60, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	pdf.SetXY(75, y)
	pdf.SetFont("Helvetica", "", 10)
	pdf.MultiCell(0, 5, "SeedQR: the same words as a QR code (standard numeric form), for wallets that scan it.", "", "L", false)
	pdf.SetX(75)
	vaultBox(pdf, keys, vaultURL)
	pdf.SetXY(10, y+65)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 7, "What this sheet is for", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.MultiCell(0, 5, strings.Join([]string{
		"These words are the only key to your backed-up key share. Anyone who has them and reaches the vault can restore your share.",
		"Keep this sheet somewhere safe and private, such as a locked drawer or a safe. Do not photograph it, scan it or store it online.",
		"If you lose your phone: install the app on a new phone, choose Restore, and type the words in order. One wrong word is found and fixed for you.",
		"If a passphrase was used (above), you need it too. It is not on this sheet.",
		"If this sheet may have been seen by someone else, rotate your words in the app: it re-encrypts your backups under new words and removes the old vault.",
	}, "\n\n"), "", "L", false)
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// vaultBox writes, from the current x, the vault ID (64 hex digits: two lines of 32, which
// fit beside the SeedQR), the vault's URL, and whether a passphrase was used.
func vaultBox(pdf *fpdf.Fpdf, keys *Keys, vaultURL string) {
	x := pdf.GetX()
	id := keys.VaultID()
	pass := "Passphrase used: [ ] yes  [x] no"
	if keys.pass != "" {
		pass = "Passphrase used: [x] yes  [ ] no (it is on no sheet)"
	}
	pdf.Ln(3)
	for _, l := range []struct{ font, text string }{{"Helvetica", "Vault ID:"}, {"Courier", id[:32]}, {"Courier", id[32:]},
		{"Helvetica", "Vault: " + vaultURL}, {"Helvetica", pass}} {
		pdf.SetX(x)
		pdf.SetFont(l.font, "", 10)
		pdf.CellFormat(0, 5, l.text, "", 1, "L", false, 0, "")
	}
}
