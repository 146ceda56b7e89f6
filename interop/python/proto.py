"""netproto v1 stream protocol pieces, from docs/WIRE.md only."""
import struct
from noise import XX, CipherState

MAGIC = b"NPRO"
VERSION = 1
F_ENCRYPTED, F_KEY_PHASE = 0x04, 0x08
DATA, PING, PONG, BYE, ACK, ERR, GOAWAY, HANDSHAKE = 1, 2, 3, 4, 5, 6, 7, 8
KIND_NAMES = {1: "DATA", 2: "PING", 3: "PONG", 4: "BYE", 5: "ACK", 6: "ERR", 7: "GOAWAY", 8: "HANDSHAKE"}
MORE, HEADERS = 0x01, 0x02
ERR_NAMES = {1: "PROTOCOL", 2: "INTERNAL", 3: "BUSY", 4: "UNKNOWN_OPCODE", 5: "BAD_REQUEST",
             6: "TIMEOUT", 7: "TOO_LARGE", 8: "SHUTTING_DOWN"}

def prologue(pattern_code=1, label=b"tcp"):
    return b"netproto/1\x00" + bytes([pattern_code, len(label)]) + label

# ---- varints ----
def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7f; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); return bytes(out)

def read_uvarint(buf, off):
    val = shift = 0
    for i in range(10):
        if off >= len(buf): raise ValueError("Truncated varint")
        b = buf[off]; off += 1
        if i == 9 and b > 1: raise ValueError("VarintOverflow")
        val |= (b & 0x7f) << shift; shift += 7
        if not b & 0x80:
            if i > 0 and b == 0: raise ValueError("VarintOverlong")
            return val, off
    raise ValueError("VarintOverflow")

# ---- packets ----
def header(flags, length):
    return MAGIC + bytes([VERSION, flags]) + struct.pack(">I", length)

def packet(flags, body):
    return header(flags, len(body)) + body

def parse_header(h):
    if h[:4] != MAGIC: raise ValueError("BadMagic %r" % h[:4])
    if h[4] != VERSION: raise ValueError("UnsupportedVersion")
    flags = h[5]
    if flags & 0xf0: raise ValueError("UnknownFlags")
    if flags & 0x03 == 3: raise ValueError("UnknownCompression")
    return flags, struct.unpack(">I", h[6:10])[0]

# ---- frames ----
def frame(kind, stream, payload=b"", flags=0, headers=None):
    out = bytes([kind, flags | (HEADERS if headers else 0)]) + uvarint(stream)
    if headers:
        blk = b"".join(bytes([len(k)]) + k + bytes([len(v)]) + v for k, v in headers)
        out += uvarint(len(blk)) + blk
    return out + uvarint(len(payload)) + payload

def parse_frames(body):
    """Yield (kind, flags, stream, headers, payload)."""
    off = 0; out = []
    while off < len(body):
        kind, flags = body[off], body[off + 1]; off += 2
        stream, off = read_uvarint(body, off)
        hdrs = None
        if flags & HEADERS:
            hl, off = read_uvarint(body, off)
            blk = body[off:off + hl]; off += hl
            hdrs = []; i = 0
            while i < len(blk):
                kl = blk[i]; k = blk[i + 1:i + 1 + kl]; i += 1 + kl
                vl = blk[i]; v = blk[i + 1:i + 1 + vl]; i += 1 + vl
                hdrs.append((k, v))
        pl, off = read_uvarint(body, off)
        if off + pl > len(body): raise ValueError("Truncated frame")
        out.append((kind, flags, stream, hdrs, body[off:off + pl])); off += pl
    return out

def handshake_packet(noise_msg):
    return packet(0, frame(HANDSHAKE, 0, noise_msg))

def parse_handshake_packet(pkt):
    flags, ln = parse_header(pkt[:10])
    assert flags == 0 and ln == len(pkt) - 10, "HandshakePacketNotPlain"
    fr = parse_frames(pkt[10:])
    assert len(fr) == 1 and fr[0][0] == HANDSHAKE and fr[0][2] == 0 and fr[0][1] == 0, "NotOneHandshakeFrame"
    return fr[0][4]

# ---- capabilities / payloads ----
def capabilities(codecs=0, max_message=16 * 1024 * 1024, features=0, version=1):
    return struct.pack(">BBII", version, codecs, max_message, features)

def parse_capabilities(b):
    if len(b) < 10: raise ValueError("capabilities too short")
    v, c, m, f = struct.unpack(">BBII", b[:10])
    if v == 0: raise ValueError("capability version 0")
    return {"version": v, "codecs": c, "max_message": m, "features": f}

def hs_payload(content=b"", pad_to=0):
    p = struct.pack(">H", len(content)) + content
    return p + bytes(max(0, pad_to - len(p)))

def parse_hs_payload(p):
    n = struct.unpack(">H", p[:2])[0]
    if 2 + n > len(p): raise ValueError("content_len beyond payload")
    return p[2:2 + n]

# ---- Message (postcard) ----
def pc_str(s: bytes): return uvarint(len(s)) + s

def msg_ping(): return uvarint(0)
def msg_pong(): return uvarint(1)
def msg_echo(s: str): return uvarint(2) + pc_str(s.encode())
def msg_data(b: bytes): return uvarint(3) + pc_str(b)
def msg_custom(cmd: str, payload: bytes): return uvarint(4) + pc_str(cmd.encode()) + pc_str(payload)
def msg_disconnect(): return uvarint(5)

def decode_message(b):
    idx, off = read_uvarint(b, 0)
    def take(off):
        n, off = read_uvarint(b, off)
        if off + n > len(b): raise ValueError("truncated field")
        return b[off:off + n], off + n
    if idx == 0: r = ("Ping",)
    elif idx == 1: r = ("Pong",)
    elif idx == 2: s, off = take(off); r = ("Echo", s.decode("utf-8"))
    elif idx == 3: s, off = take(off); r = ("Data", s)
    elif idx == 4:
        c, off = take(off); p, off = take(off); r = ("Custom", c.decode("utf-8"), p)
    elif idx == 5: r = ("Disconnect",)
    else: return ("Unknown",)
    if off != len(b): raise ValueError("TrailingBytes")
    return r

# ---- session records ----
class Session:
    def __init__(self, send_cs: CipherState, recv_cs: CipherState):
        self.tx, self.rx = send_cs, recv_cs
        self.tx_phase = 0; self.rx_phase = 0
    def seal(self, plaintext, compression=0):
        assert len(plaintext) <= 65519
        flags = F_ENCRYPTED | (F_KEY_PHASE if self.tx_phase else 0) | compression
        hdr = header(flags, len(plaintext) + 16)
        return hdr + self.tx.encrypt(hdr, plaintext)
    def open(self, hdr, body):
        flags, ln = parse_header(hdr)
        if not flags & F_ENCRYPTED: raise ValueError("PlaintextAfterHandshake")
        if flags & 0x03: raise ValueError("compressed record but no codec advertised")
        if ln < 16: raise ValueError("sealed body shorter than tag")
        phase = 1 if flags & F_KEY_PHASE else 0
        if phase != self.rx_phase:
            self.rx.rekey(); self.rx_phase = phase
        return self.rx.decrypt(hdr, body)
