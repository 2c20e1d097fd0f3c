#!/usr/bin/python3
"""Generate vectors.json with an independent BIP-39 implementation.

Run once with Debian's python3-mnemonic (trezor's reference code):

    apt-get install python3-mnemonic
    /usr/bin/python3 internal/mnemonic/testdata/gen_vectors.py > internal/mnemonic/testdata/vectors.json

The output is pinned: never regenerate it. The random entropies were drawn once, when the file was
made; the reference entropies are the ones the BIP-39 specification lists for English.
"""
import json
import os

from mnemonic import Mnemonic

# Entropies of the BIP-39 English reference vectors.
REFERENCE = [
    "00000000000000000000000000000000", "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
    "80808080808080808080808080808080", "ffffffffffffffffffffffffffffffff",
    "000000000000000000000000000000000000000000000000",
    "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
    "808080808080808080808080808080808080808080808080",
    "ffffffffffffffffffffffffffffffffffffffffffffffff",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
    "8080808080808080808080808080808080808080808080808080808080808080",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "7dce4ed2284c9134d026608ab684c05c", "0ce452419635c1a5faf44d60f2029f73fdc43419b4de1f03",
    "00ac97c48106f0aeb8ba061e0250a559b3251dc35854e694780ba51d53a50120",
    "5baf069620eff15c71dd97c9a6ee328f", "977f8287f9ed670b8489838ab0476a63b65d4df12f406e68",
    "3edc83b60740d77af3afa2fcb82c2f1bc541ee4e2518ddef4996d32453f54a3c",
    "63deb1e7f0c3de56f4ab43c9d2ae6c86", "e77c6500b49072aefdf0a8aa787cf557d1920e94103e0597",
    "89bb4bc5555992cdaf3444c5e7ca5a6e9f27efab894f1990bae41be8b2a26ea4",
    "00641669f095b433a304ed0f953f28eb", "b8b0ff94389d3ec591c7d2fb72d8d3666e4e52b8cdf5471d",
    "911fec0fbd88029f6fa99164896c18d898c9232af18bdcca3e42d53b86493104",
]


def main():
    m = Mnemonic("english")
    # A known answer, so a broken library cannot write a plausible file.
    assert m.to_mnemonic(bytes(16)) == " ".join(["abandon"] * 11 + ["about"])
    vectors = []
    for origin, entropies in (
        ("bip39-reference", [bytes.fromhex(e) for e in REFERENCE]),
        ("random", [os.urandom(n) for n in (16, 20, 24, 28, 32) for _ in range(3)]),
    ):
        for entropy in entropies:
            words = m.to_mnemonic(entropy)
            assert m.check(words)
            assert bytes(m.to_entropy(words)) == entropy
            vectors.append({"origin": origin, "entropy": entropy.hex(), "words": words})
    print(json.dumps({"generator": "python3-mnemonic (trezor) via gen_vectors.py",
                      "vectors": vectors}, indent=1))


if __name__ == "__main__":
    main()
