#!/usr/bin/python3
"""An independent reader of docs/keys.md, docs/envelope.md and the request signatures of
docs/api.md, written from those documents only.

It derives the recovery keys, opens (or rejects) every pinned envelope vector, and checks (or
refuses) every pinned request signature with Python's `cryptography` and `argon2-cffi` packages,
and exits non-zero on any disagreement:

    apt-get install python3-cryptography python3-argon2
    /usr/bin/python3 docs/reference/check_vectors.py      # or: make crosscheck
"""
import base64
import hashlib
import json
import re
import struct
import sys
import unicodedata

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

import hmac


def hkdf(ikm, salt, info, n):
    return HKDF(hashes.SHA256(), n, salt or None, info.encode()).derive(ikm)


# docs/keys.md
def identity(secret):
    seed = hkdf(secret, b"", "sharevault v1 vault signing key", 32)
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pub, hashlib.sha256(b"sharevault v1 vault id" + pub).digest()


class PassphraseRequired(Exception):
    pass


class NoPassphraseUsed(Exception):
    pass


def root_key(secret, passphrase, kdf):
    # docs/envelope.md, "What a reader must decide"
    if kdf["algorithm"] == "argon2id" and passphrase == "":
        raise PassphraseRequired()
    if kdf["algorithm"] != "argon2id" and passphrase != "":
        raise NoPassphraseUsed()
    p = b""
    if kdf["algorithm"] == "argon2id":
        salt = hkdf(secret, b"", "sharevault v1 argon2id salt", 16)
        p = hash_secret_raw(unicodedata.normalize("NFKD", passphrase).encode(), salt,
                            time_cost=kdf["t"], memory_cost=kdf["m_kib"], parallelism=kdf["p"],
                            hash_len=32, type=Type.ID, version=19)
    return hkdf(secret + p, b"", "sharevault v1 aead root key", 32)


class Malformed(Exception):
    pass


class Unsupported(Exception):
    pass


class ArmorError(Exception):
    pass


# docs/envelope.md, "Layout"
def parse(b):
    if len(b) < 5 or b[:4] != b"SVBK":
        raise Malformed("magic")
    if b[4] != 1:
        raise Unsupported()
    if len(b) < 69:
        raise Malformed("truncated")
    scheme, kdf, p = b[5], b[6], b[7]
    t, m = struct.unpack(">II", b[8:16])
    seq, created = struct.unpack(">QQ", b[52:68])
    n = b[68]
    if scheme not in (1, 2):
        raise Malformed("scheme")
    if kdf == 0 and (p, t, m) != (0, 0, 0):
        raise Malformed("kdf fields")
    if kdf == 1 and not (1 <= p <= 16 and 1 <= t <= 16 and 8 * p <= m <= 1 << 20):
        raise Malformed("argon2id range")
    if kdf not in (0, 1):
        raise Malformed("kdf")
    if seq == 0 or created >= 1 << 63 or not 1 <= n <= 64:
        raise Malformed("field")
    hl = 69 + n + 64
    if len(b) < hl:
        raise Malformed("truncated")
    key_id = b[69:69 + n]
    if any(not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "_-")) for c in key_id):
        raise Malformed("key id")
    ct = b[hl:]
    if not 16 <= len(ct) <= (4 << 20) + 16:
        raise Malformed("ciphertext length")
    kdfp = {"algorithm": "argon2id" if kdf else "none", "t": t, "m_kib": m, "p": p}
    return b[:hl], kdfp, b[69 + n:69 + n + 32], b[69 + n + 32:hl], ct


# docs/envelope.md, "Keys" and "Opening"
def open_envelope(secret, passphrase, b):
    header, kdf, salt, commitment, ct = parse(b)
    root = root_key(secret, passphrase, kdf)
    prk = hmac.new(salt, root, hashlib.sha256).digest()  # HKDF-Extract(salt, ikm)
    key = HKDFExpand(hashes.SHA256(), 32, b"sharevault v1 payload key").derive(prk)
    commit = HKDFExpand(hashes.SHA256(), 32, b"sharevault v1 key commitment").derive(prk)
    if not hmac.compare_digest(commit, commitment):
        raise InvalidTag()
    return AESGCM(key).decrypt(bytes(12), ct, header)


# docs/envelope.md, "ASCII armor"
def dearmor(text):
    lines = text.strip().replace("\r\n", "\n").split("\n")
    if len(lines) < 3 or lines[0] != "-----BEGIN SHAREVAULT BACKUP-----" or lines[-1] != "-----END SHAREVAULT BACKUP-----":
        raise ArmorError()
    body = lines[1:-1]
    for i, line in enumerate(body):
        if not line or len(line) > 64 or (i < len(body) - 1 and len(line) != 64):
            raise ArmorError()
    enc = "".join(body)
    try:
        out = base64.b64decode(enc, validate=True)
    except ValueError:
        raise ArmorError()
    if base64.b64encode(out).decode() != enc:
        raise ArmorError()
    return out


# docs/api.md, "Signed requests"
class SigMalformed(Exception):
    pass


def covered(headers):
    c = ["@method", "@path", "@query", "content-digest"]
    return c + [f for f in ("if-match", "if-none-match") if f in headers]


def check_signature(secret, v):
    """Returns "ok", or raises SigMalformed, or returns "invalid"."""
    h = v["headers"]
    comps = covered(h)
    m = re.fullmatch(r'sig1=\(([^)]*)\);created=([1-9][0-9]*);keyid="([0-9a-f]{64})";alg="ed25519"', v["signature_input"])
    if not m or m.group(1) != " ".join('"%s"' % c for c in comps):
        raise SigMalformed()
    m2 = re.fullmatch(r"sig1=:([A-Za-z0-9+/=]+):", v["signature"])
    if not m2:
        raise SigMalformed()
    try:
        sig = base64.b64decode(m2.group(1), validate=True)
    except ValueError:
        raise SigMalformed()
    if len(sig) != 64 or base64.b64encode(sig).decode() != m2.group(1):
        raise SigMalformed()
    values = {"@method": v["method"], "@path": v["path"] or "/", "@query": "?" + v["query"]}
    lines = ['"%s": %s' % (c, values[c] if c in values else h[c].strip()) for c in comps]
    lines.append('"@signature-params": ' + v["signature_input"][len("sig1="):])
    base = "\n".join(lines).encode()
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(m.group(3)))
    try:
        pub.verify(sig, base)
    except InvalidSignature:
        return "invalid", base
    return "ok", base


def main():
    failures = 0
    keys = json.load(open("internal/recovery/testdata/keys-v1.json"))["vectors"]
    for v in keys:
        secret = bytes.fromhex(v["secret"])
        pub, vid = identity(secret)
        got = (pub.hex(), vid.hex(), root_key(secret, v["passphrase"], v["kdf"]).hex())
        want = (v["signing_public_key"], v["vault_id"], v["root_key"])
        if got != want:
            failures += 1
            print("FAIL keys", v["secret"], v["passphrase"], got, want)
    envs = json.load(open("internal/envelope/testdata/v1/vectors.json"))["vectors"]
    envs += json.load(open("internal/envelope/testdata/v1/readers.json"))["vectors"]
    for v in envs:
        secret = bytes.fromhex(v["secret"])
        try:
            b = dearmor(v["armored"]) if v.get("armored") else bytes.fromhex(v.get("envelope", ""))
            pt = open_envelope(secret, v["passphrase"], b)
            got = "ok" if pt.hex() == v.get("plaintext", "") else "wrong plaintext"
        except InvalidTag:
            got = "decrypt"
        except Malformed:
            got = "malformed"
        except Unsupported:
            got = "unsupported"
        except ArmorError:
            got = "armor"
        except PassphraseRequired:
            got = "passphrase-required"
        except NoPassphraseUsed:
            got = "no-passphrase-used"
        if got != v["expect"]:
            failures += 1
            print("FAIL", v["name"], "got", got, "want", v["expect"])
    sigs = json.load(open("api/testdata/signatures-v1.json"))["vectors"]
    for v in sigs:
        secret = bytes.fromhex(v["secret"])
        try:
            got, base = check_signature(secret, v)
        except SigMalformed:
            got, base = "malformed", None
        if got == "ok":
            seed = hkdf(secret, b"", "sharevault v1 vault signing key", 32)
            mine = base64.b64encode(Ed25519PrivateKey.from_private_bytes(seed).sign(base)).decode()
            if base.decode() != v["signature_base"] or "sig1=:" + mine + ":" != v["signature"]:
                got = "different base or signature"
            if v["headers"]["content-digest"] != "sha-256=:" + base64.b64encode(hashlib.sha256(bytes.fromhex(v["body"])).digest()).decode() + ":":
                got = "wrong content-digest"
        if got != v["expect"]:
            failures += 1
            print("FAIL signature", v["name"], "got", got, "want", v["expect"])
    total = len(keys) + len(envs) + len(sigs)
    print(f"{total - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
