package client

// ECDSA keys as wallets use them (docs/app.md, "ECDSA keys"): a digest signed by the phone
// and the server nodes (threshold ECDSA, DKLs23), for the key or a child of it at a BIP-32
// path, and the key's Ethereum address and extended public key.

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/sharevault/sharevault/internal/bip32"
	"github.com/sharevault/sharevault/internal/ethereum"
	"github.com/sharevault/sharevault/internal/tsm"
)

// child derives the public key of keyID at path ("" or "m" for the key itself).
func (p *Phone) child(keyID, path string) (*bip32.Derived, []uint32, error) {
	idx, err := bip32.ParsePath(path)
	if err != nil {
		return nil, nil, err
	}
	s, err := p.node.SchemeOf(keyID)
	if err != nil {
		return nil, nil, err
	}
	if s != tsm.ECDSA {
		return nil, nil, fmt.Errorf("%s is an %s key: addresses and paths are for ECDSA keys", keyID, s)
	}
	info, err := tsm.NewECDSAClient(p.node).KeyInfo(keyID)
	if err != nil {
		return nil, nil, err
	}
	d, err := bip32.Derive(info.PublicKey, info.ChainCode, idx)
	return d, idx, err
}

// EthereumAddress is the EIP-55 address of keyID's key at path.
func (p *Phone) EthereumAddress(keyID, path string) (string, error) {
	d, _, err := p.child(keyID, path)
	if err != nil {
		return "", err
	}
	return ethereum.Address(d.PublicKey)
}

// XPub is the BIP-32 extended public key of keyID at path: a watch-only wallet derives the
// key's children from it, and SignDigest with a path signs for them.
func (p *Phone) XPub(keyID, path string) (string, error) {
	d, _, err := p.child(keyID, path)
	if err != nil {
		return "", err
	}
	return d.XPub(), nil
}

// SignDigest signs a 32-byte digest (64 hex digits) with the ECDSA key keyID, or its child
// at path, across the phone and the server nodes. It returns 65 bytes in hex, r || s || v,
// s low (BIP-62, EIP-2) and v the recovery ID (0 or 1; add 27 for Ethereum's legacy v),
// verified with decred's ecdsa before it is returned.
func (p *Phone) SignDigest(keyID, digestHex, path string) (string, error) {
	digest, err := hex.DecodeString(digestHex)
	if err != nil || len(digest) != 32 {
		return "", errors.New("a digest is 32 bytes: 64 hex digits")
	}
	sig, err := p.signDigest(keyID, digest, path)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sig.Compact()), nil
}

// PresignECDSA runs, ahead, the rounds of keyID's next signature that do not depend on the
// digest, with the phone and every server node (two round trips): the next signature with
// the key in this process, within ten minutes, is then one round trip. An app calls it when
// it expects to sign (a wallet screen opened); it changes nothing if unused.
func (p *Phone) PresignECDSA(keyID string) error {
	s, err := p.node.SchemeOf(keyID)
	if err != nil {
		return err
	}
	if s != tsm.ECDSA {
		return fmt.Errorf("%s is an %s key: only ECDSA signatures are made ahead (EdDSA's are one round trip already)", keyID, s)
	}
	err = p.withAll(func(c *tsm.Client) error { return tsm.NewECDSAClient(c).Presign(keyID) })
	if errors.Is(err, tsm.ErrStaleEpoch) {
		return ErrStale
	}
	return err
}

func (p *Phone) signDigest(keyID string, digest []byte, path string) (*tsm.Signature, error) {
	_, idx, err := p.child(keyID, path)
	if err != nil {
		return nil, err
	}
	var sig *tsm.Signature
	err = p.signWith(keyID, tsm.ECDSA, func(c *tsm.Client) (err error) {
		sig, err = tsm.NewECDSAClient(c).Sign(keyID, digest, idx)
		return err
	})
	return sig, err
}

// SignEthereumMessage signs message as Ethereum's personal_sign does (EIP-191: Keccak-256
// of "\x19Ethereum Signed Message:\n", its length and itself) and returns the 65-byte
// signature in hex with v = 27 + the recovery ID, as wallets and ecrecover take it.
func (p *Phone) SignEthereumMessage(keyID, message, path string) (string, error) {
	sig, err := p.signDigest(keyID, ethereum.PersonalMessageHash([]byte(message)), path)
	if err != nil {
		return "", err
	}
	b := sig.Compact()
	b[64] += 27
	return hex.EncodeToString(b), nil
}
