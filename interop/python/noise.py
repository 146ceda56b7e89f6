"""Minimal Noise_XX_25519_ChaChaPoly_SHA256 (Noise rev 34), initiator+responder."""
import hashlib, hmac, struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

HASHLEN = 32
MAXN = 2**64 - 1

def pub_of(priv: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)

def dh(priv: bytes, pub: bytes) -> bytes:
    out = X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))
    if out == bytes(32):
        raise ValueError("low-order point")
    return out

def nonce(n: int) -> bytes:
    return b"\x00" * 4 + struct.pack("<Q", n)

def hkdf(ck, ikm, n):
    tk = hmac.new(ck, ikm, hashlib.sha256).digest()
    o1 = hmac.new(tk, b"\x01", hashlib.sha256).digest()
    o2 = hmac.new(tk, o1 + b"\x02", hashlib.sha256).digest()
    if n == 2:
        return o1, o2
    o3 = hmac.new(tk, o2 + b"\x03", hashlib.sha256).digest()
    return o1, o2, o3

class CipherState:
    def __init__(self, k=None):
        self.k = k; self.n = 0
    def encrypt(self, ad, pt):
        if self.k is None: return pt
        if self.n >= MAXN: raise ValueError("nonce exhausted")
        ct = ChaCha20Poly1305(self.k).encrypt(nonce(self.n), pt, ad); self.n += 1; return ct
    def decrypt(self, ad, ct):
        if self.k is None: return ct
        if self.n >= MAXN: raise ValueError("nonce exhausted")
        pt = ChaCha20Poly1305(self.k).decrypt(nonce(self.n), ct, ad); self.n += 1; return pt
    def rekey(self):
        self.k = ChaCha20Poly1305(self.k).encrypt(nonce(MAXN), bytes(32), b"")[:32]

class SymmetricState:
    def __init__(self, name: bytes):
        self.h = name.ljust(HASHLEN, b"\x00") if len(name) <= HASHLEN else hashlib.sha256(name).digest()
        self.ck = self.h; self.cs = CipherState()
    def mix_key(self, ikm):
        self.ck, tk = hkdf(self.ck, ikm, 2); self.cs = CipherState(tk)
    def mix_hash(self, data):
        self.h = hashlib.sha256(self.h + data).digest()
    def enc_hash(self, pt):
        ct = self.cs.encrypt(self.h, pt); self.mix_hash(ct); return ct
    def dec_hash(self, ct):
        pt = self.cs.decrypt(self.h, ct); self.mix_hash(ct); return pt
    def split(self):
        k1, k2 = hkdf(self.ck, b"", 2); return CipherState(k1), CipherState(k2)

class XX:
    """Handshake state for XX. initiator=True for the client."""
    def __init__(self, initiator, s_priv, prologue, e_priv=None):
        self.init = initiator
        self.s = s_priv; self.s_pub = pub_of(s_priv)
        self.e = e_priv  # optional fixed ephemeral
        self.ss = SymmetricState(b"Noise_XX_25519_ChaChaPoly_SHA256")
        self.ss.mix_hash(prologue)
        self.re = self.rs = None
        self.step = 0
    def _gen_e(self):
        if self.e is None:
            self.e = X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        return pub_of(self.e)
    # initiator
    def write1(self, payload):
        e_pub = self._gen_e(); self.ss.mix_hash(e_pub)
        return e_pub + self.ss.enc_hash(payload)
    def read2(self, msg):
        self.re = msg[:32]; self.ss.mix_hash(self.re)
        self.ss.mix_key(dh(self.e, self.re))
        self.rs = self.ss.dec_hash(msg[32:80])
        self.ss.mix_key(dh(self.e, self.rs))
        return self.ss.dec_hash(msg[80:])
    def write3(self, payload):
        c = self.ss.enc_hash(self.s_pub)
        self.ss.mix_key(dh(self.s, self.re))
        c += self.ss.enc_hash(payload)
        return c
    # responder
    def read1(self, msg):
        self.re = msg[:32]; self.ss.mix_hash(self.re)
        return self.ss.dec_hash(msg[32:])
    def write2(self, payload):
        e_pub = self._gen_e(); self.ss.mix_hash(e_pub)
        self.ss.mix_key(dh(self.e, self.re))
        c = self.ss.enc_hash(self.s_pub)
        self.ss.mix_key(dh(self.s, self.re))
        return e_pub + c + self.ss.enc_hash(payload)
    def read3(self, msg):
        self.rs = self.ss.dec_hash(msg[:48])
        self.ss.mix_key(dh(self.e, self.rs))
        return self.ss.dec_hash(msg[48:])
    def split(self):
        return self.ss.split()
    @property
    def h(self): return self.ss.h
