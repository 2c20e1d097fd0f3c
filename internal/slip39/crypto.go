package slip39

// All of the package's cryptography (SLIP-0039, "Shamir's Secret-Sharing for Mnemonic
// Codes"): Shamir's scheme over GF(256) with the digest share, the Feistel encryption of
// the master secret with PBKDF2-HMAC-SHA256, and the RS1024 checksum of a share's words.

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
	"fmt"
)

// GF(256) with the AES polynomial x^8 + x^4 + x^3 + x + 1, generator 3.
var gfExp, gfLog = func() (exp [255]byte, log [256]byte) {
	x := byte(1)
	for i := range 255 {
		exp[i] = x
		log[x] = byte(i)
		x ^= x<<1 ^ byte(0x1b*int(x>>7)) // x·3 = x·2 + x
	}
	return exp, log
}()

func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[(int(gfLog[a])+int(gfLog[b]))%255]
}

func gfDiv(a, b byte) byte {
	if a == 0 {
		return 0
	}
	return gfExp[(int(gfLog[a])-int(gfLog[b])+255)%255]
}

type point struct {
	x     int
	value []byte
}

const (
	digestIndex = 254
	secretIndex = 255
)

// interpolate returns the value at x of the polynomial through the points (each byte of
// the values a polynomial of its own). The points' x must differ.
func interpolate(ps []point, x int) ([]byte, error) {
	for _, p := range ps {
		if p.x == x {
			return append([]byte(nil), p.value...), nil
		}
	}
	n := len(ps[0].value)
	out := make([]byte, n)
	for i, p := range ps {
		if len(p.value) != n {
			return nil, errors.New("share values of different lengths")
		}
		// Lagrange basis at x: Π (x - x_j)/(x_i - x_j); subtraction is XOR.
		num, den := byte(1), byte(1)
		for j, q := range ps {
			if j == i {
				continue
			}
			if q.x == p.x {
				return nil, errors.New("two shares with one index")
			}
			num = gfMul(num, byte(x)^byte(q.x))
			den = gfMul(den, byte(p.x)^byte(q.x))
		}
		l := gfDiv(num, den)
		for k := range n {
			out[k] ^= gfMul(l, p.value[k])
		}
	}
	return out, nil
}

func shareDigest(randomPart, secret []byte) []byte {
	m := hmac.New(sha256.New, randomPart)
	m.Write(secret)
	return m.Sum(nil)[:digestLen]
}

// splitSecret is SLIP-0039 split_secret: n shares, any t of which give secret back; for
// t > 1 the digest share at 254 lets a reader detect a wrong set.
func splitSecret(t, n int, secret []byte, rand func([]byte)) ([]point, error) {
	if t < 1 || t > n || n > 16 {
		return nil, fmt.Errorf("%w: a %d-of-%d split", ErrInvalid, t, n)
	}
	if t == 1 {
		out := make([]point, n)
		for i := range out {
			out[i] = point{i, append([]byte(nil), secret...)}
		}
		return out, nil
	}
	out := make([]point, 0, n)
	for i := range t - 2 {
		v := make([]byte, len(secret))
		rand(v)
		out = append(out, point{i, v})
	}
	randomPart := make([]byte, len(secret)-digestLen)
	rand(randomPart)
	base := append(append([]point(nil), out...),
		point{digestIndex, append(shareDigest(randomPart, secret), randomPart...)}, point{secretIndex, secret})
	for i := t - 2; i < n; i++ {
		v, err := interpolate(base, i)
		if err != nil {
			return nil, err
		}
		out = append(out, point{i, v})
	}
	return out, nil
}

// recoverSecret is SLIP-0039 recover_secret: the secret from t shares, checked by the
// digest share.
func recoverSecret(t int, ps []point) ([]byte, error) {
	if t == 1 {
		return append([]byte(nil), ps[0].value...), nil
	}
	secret, err := interpolate(ps, secretIndex)
	if err != nil {
		return nil, err
	}
	d, err := interpolate(ps, digestIndex)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(d[:digestLen], shareDigest(d[digestLen:], secret)) {
		return nil, fmt.Errorf("%w: the shares' digest does not match (a share is wrong or of another secret)", ErrMismatch)
	}
	return secret, nil
}

// feistel runs SLIP-0039's 4-round Feistel network over data: the round function is
// PBKDF2-HMAC-SHA256(password = round || passphrase, salt = salt || R, 2500·2^e iterations).
func feistel(data []byte, passphrase string, e int, id uint16, ext bool, rounds []byte) []byte {
	half := len(data) / 2
	l, r := append([]byte(nil), data[:half]...), append([]byte(nil), data[half:]...)
	var salt []byte
	if !ext {
		salt = []byte{'s', 'h', 'a', 'm', 'i', 'r', byte(id >> 8), byte(id)}
	}
	for _, i := range rounds {
		f, err := pbkdf2.Key(sha256.New, string(append([]byte{i}, passphrase...)), append(append([]byte(nil), salt...), r...), 2500<<e, len(r))
		if err != nil {
			panic(err) // only for impossible parameters
		}
		for k := range l {
			l[k] ^= f[k]
		}
		l, r = r, l
	}
	return append(r, l...)
}

func encrypt(secret []byte, passphrase string, e int, id uint16, ext bool) []byte {
	return feistel(secret, passphrase, e, id, ext, []byte{0, 1, 2, 3})
}

func decrypt(ems []byte, passphrase string, e int, id uint16, ext bool) []byte {
	return feistel(ems, passphrase, e, id, ext, []byte{3, 2, 1, 0})
}

var rsGen = [10]uint32{0xE0E040, 0x1C1C080, 0x3838100, 0x7070200, 0xE0E0009, 0x1C0C2412, 0x38086C24, 0x3090FC48, 0x21B1F890, 0x3F3F120}

func rs1024Polymod(values []int) uint32 {
	chk := uint32(1)
	for _, v := range values {
		b := chk >> 20
		chk = (chk&0xFFFFF)<<10 ^ uint32(v)
		for i := range 10 {
			if b>>i&1 == 1 {
				chk ^= rsGen[i]
			}
		}
	}
	return chk
}

func withCustomization(cs []byte, data []int) []int {
	values := make([]int, 0, len(cs)+len(data)+checksumWords)
	for _, c := range cs {
		values = append(values, int(c))
	}
	return append(values, data...)
}

func rs1024Verify(data []int, cs []byte) bool {
	return rs1024Polymod(withCustomization(cs, data)) == 1
}

func rs1024Checksum(data []int, cs []byte) []int {
	values := append(withCustomization(cs, data), 0, 0, 0)
	p := rs1024Polymod(values) ^ 1
	return []int{int(p >> 20 & 1023), int(p >> 10 & 1023), int(p & 1023)}
}
