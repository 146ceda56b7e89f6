"""netproto v1 TCP client (XX) written from docs/WIRE.md only.
usage: client.py HOST:PORT [SERVER_PUBKEY_BASE64]"""
import sys, os, socket, struct, time, base64
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noise import XX
import proto as P

class Closed(Exception): pass

class Conn:
    def __init__(self, addr, server_pub=None, caps=None, timeout=8.0, verbose=True):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.server_pub = server_pub
        self.caps = caps if caps is not None else P.capabilities(codecs=0)  # no LZ4/Zstd
        self.s_priv = os.urandom(32)
        self.v = verbose
        self.sess = None; self.peer_caps = None
        self.partial = {}  # (kind, stream) -> bytes (reassembly)
    def log(self, *a):
        if self.v: print("   ", *a)
    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try: d = self.sock.recv(n - len(buf))
            except socket.timeout: raise TimeoutError("read timeout")
            except ConnectionResetError: raise Closed("reset")
            if not d: raise Closed("EOF" if not buf else "EOF inside packet")
            buf += d
        return buf
    def read_packet(self):
        hdr = self.recv_exact(10)
        flags, ln = P.parse_header(hdr)
        limit = 65541 if self.sess is None else 65535
        if ln > limit: raise ValueError("Oversize")
        return hdr, self.recv_exact(ln)

    # ---- handshake ----
    def handshake(self, msg1_pad=76, msg3_payload=None):
        self.hs = XX(True, self.s_priv, P.prologue(1, b"tcp"))
        m1 = self.hs.write1(P.hs_payload(b"", pad_to=msg1_pad))
        self.sock.sendall(P.handshake_packet(m1))
        hdr, body = self.read_packet()
        m2 = P.parse_handshake_packet(hdr + body)
        self.log(f"message 2: {len(m2)} bytes of Noise")
        pl2 = self.hs.read2(m2)
        if self.server_pub is not None and self.hs.rs != self.server_pub:
            raise ValueError("server static key mismatch")
        self.log("server static key", base64.b64encode(self.hs.rs).decode(),
                 "(verified)" if self.server_pub else "(not pinned)")
        self.peer_caps = P.parse_capabilities(P.parse_hs_payload(pl2))
        self.log("server caps", self.peer_caps)
        p3 = P.hs_payload(self.caps) if msg3_payload is None else msg3_payload
        m3 = self.hs.write3(p3)
        self.sock.sendall(P.handshake_packet(m3))
        tx, rx = self.hs.split()
        self.sess = P.Session(tx, rx)

    # ---- records/frames ----
    def send_frames(self, *frames):
        self.sock.sendall(self.sess.seal(b"".join(frames)))
    def send_message(self, kind, stream, payload, piece=65500):
        """Send a message, split with MORE into one piece per record if needed."""
        chunks = [payload[i:i + piece] for i in range(0, len(payload), piece)] or [b""]
        for i, ch in enumerate(chunks):
            self.send_frames(P.frame(kind, stream, ch, flags=P.MORE if i < len(chunks) - 1 else 0))
    def send_raw(self, data):
        self.sock.sendall(data)
    def next_frames(self):
        hdr, body = self.read_packet()
        pt = self.sess.open(hdr, body)
        return P.parse_frames(pt)
    def describe(self, kind, flags, stream, hdrs, payload):
        n = P.KIND_NAMES.get(kind, hex(kind))
        if kind == P.ERR:
            code = struct.unpack(">H", payload[:2])[0]
            return f"ERR stream={stream} code={code} ({P.ERR_NAMES.get(code,'?')}) reason={payload[2:].decode(errors='replace')!r}"
        if kind == P.DATA and not flags & P.MORE:
            try: m = P.decode_message(payload)
            except Exception as e: m = f"undecodable {payload.hex()} ({e})"
            return f"DATA stream={stream} {m}"
        return f"{n} stream={stream} flags={flags:#x} payload={payload.hex()}"

    def pump(self, want_streams=(), until_close=False, idle=None):
        # idle given and nothing awaited: read until `idle` seconds pass without a frame
        """Read frames, answer PINGs; return (answers{stream: (kind,payload)}, events, closed_reason)."""
        answers, events = {}, []
        want = set(want_streams)
        if idle: self.sock.settimeout(idle)
        deadline = time.time() + idle if idle else None
        try:
            while until_close or (want - set(answers)) or (idle and not want):
                if deadline:
                    left = deadline - time.time()
                    if left <= 0: return answers, events, "timeout"
                    self.sock.settimeout(left)
                for (kind, flags, stream, hdrs, payload) in self.next_frames():
                    d = self.describe(kind, flags, stream, hdrs, payload)
                    events.append((kind, stream, payload)); self.log(f"<- [{time.strftime('%H:%M:%S')}]", d)
                    if kind == P.PING:
                        if len(payload) <= 64:
                            self.send_frames(P.frame(P.PONG, 0, payload)); self.log("-> PONG", payload.hex())
                    elif kind in (P.DATA, P.ERR, P.ACK):
                        key = (kind, stream)
                        self.partial[key] = self.partial.get(key, b"") + payload
                        if not flags & P.MORE:
                            answers[stream] = (kind, self.partial.pop(key))
                    elif kind == P.BYE:
                        return answers, events, "BYE"
        except Closed as e:
            return answers, events, str(e)
        except TimeoutError:
            return answers, events, "timeout"
        return answers, events, None

    def close_bye(self, reason=b""):
        self.send_frames(P.frame(P.BYE, 0, reason))
        self.log("-> BYE")
        _, ev, why = self.pump(until_close=True)
        # after server BYE expect EOF
        try:
            rest = self.sock.recv(1)
            why2 = "EOF" if rest == b"" else f"more data {rest!r}"
        except Exception as e:
            why2 = repr(e)
        self.sock.close()
        return why, why2

def main():
    addr = sys.argv[1]
    pub = base64.b64decode(sys.argv[2]) if len(sys.argv) > 2 else None
    c = Conn(addr, pub)
    c.handshake()
    print("handshake ok")
    c.send_frames(P.frame(P.DATA, 1, P.msg_echo("hello")))
    c.send_frames(P.frame(P.DATA, 2, P.msg_ping()))
    c.send_frames(P.frame(P.DATA, 3, P.msg_custom("frobnicate", b"\x01\x02")))
    ans, ev, why = c.pump(want_streams=(1, 2, 3))
    print("answers:", {k: (P.KIND_NAMES[v[0]], v[1].hex()) for k, v in ans.items()}, "closed:", why)
    assert ans[1] == (P.DATA, P.msg_echo("hello")), ans.get(1)
    assert ans[2] == (P.DATA, P.msg_pong()), ans.get(2)
    assert ans[3][0] == P.ERR and struct.unpack(">H", ans[3][1][:2])[0] == 4, ans.get(3)
    print("echo/ping/unknown-opcode OK")
    print(c.close_bye())

if __name__ == "__main__":
    main()
