package mnemonic

// This file is the only one that touches github.com/tyler-smith/go-bip39, so that the
// library can be swapped: its upstream repository is gone (the module proxy still serves
// v1.1.0). go-bip39 does no Unicode normalization; Parse does that before calling here.

import (
	"errors"
	"strings"

	"github.com/tyler-smith/go-bip39"
)

// english is the BIP-39 English word list, in index order. go-bip39 keeps its list in a
// package variable that SetWordList can change; sharevault never calls SetWordList.
var english = bip39.GetWordList()

// encode returns the words for entropy (16, 20, 24, 28 or 32 bytes).
func encode(entropy []byte) ([]string, error) {
	s, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return nil, err
	}
	return strings.Fields(s), nil
}

// decode returns the entropy of words that are all on the English list. It returns
// ErrChecksum if the checksum bits do not match.
func decode(words []string) ([]byte, error) {
	entropy, err := bip39.EntropyFromMnemonic(strings.Join(words, " "))
	if errors.Is(err, bip39.ErrChecksumIncorrect) {
		return nil, ErrChecksum
	}
	return entropy, err
}
