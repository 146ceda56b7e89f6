"""Reproduce the xx-tcp handshake transcript from docs/WIRE.md (client side)."""
import sys, re
sys.path.insert(0, __import__("os").path.dirname(__file__))
from noise import XX, pub_of
import proto as P

T = open(__import__("os").path.join(__import__("os").path.dirname(__import__("os").path.abspath(__file__)), "..", "..", "docs", "WIRE.md")).read()
blk = T.split("```transcript\n", 1)[1].split("```", 1)[0]
vals = {}; cur = None
for line in blk.splitlines():
    m = re.match(r"^(\w+): (.*)$", line)
    if m: cur = m.group(1); vals[cur] = m.group(2)
    elif line.startswith("    ") and cur: vals[cur] += line
hexv = {k: bytes.fromhex(v.replace(" ", "")) for k, v in vals.items() if k != "name"}

ok = True
def check(name, got):
    global ok
    exp = hexv[name]; good = got == exp; ok &= good
    print(f"{name:28s} {'MATCH' if good else 'MISMATCH'}")
    if not good: print("  got ", got.hex()); print("  want", exp.hex())

check("prologue", P.prologue(1, b"tcp"))
check("client_static_public", pub_of(hexv["client_static_private"]))
check("server_static_public", pub_of(hexv["server_static_private"]))

c = XX(True, hexv["client_static_private"], P.prologue(), e_priv=hexv["client_ephemeral_private"])
# Transcript uses codecs=03 (a build with LZ4+Zstd); our live client sends codecs=00.
caps = P.capabilities(codecs=3)
p1 = P.hs_payload(b"", pad_to=76)
check("message_1_payload", p1)
check("client_message_1", P.handshake_packet(c.write1(p1)))
pl2 = c.read2(P.parse_handshake_packet(hexv["server_message_2"]))
check("message_2_payload", pl2)
print("  server static from msg2 == server_static_public:", c.rs == hexv["server_static_public"])
print("  server caps:", P.parse_capabilities(P.parse_hs_payload(pl2)))
p3 = P.hs_payload(caps)
check("message_3_payload", p3)
check("client_message_3", P.handshake_packet(c.write3(p3)))
check("handshake_hash", c.h)
tx, rx = c.split()
check("client_to_server_key", tx.k)
check("server_to_client_key", rx.k)
sess = P.Session(tx, rx)
check("request_message", P.msg_echo("hello"))
pt = P.frame(P.DATA, 1, P.msg_echo("hello"))
check("client_record_1_plaintext", pt)
check("client_record_1", sess.seal(pt))
sr = hexv["server_record_1"]
got = sess.open(sr[:10], sr[10:])
check("server_record_1_plaintext", got)
print("  server record frames:", P.parse_frames(got), P.decode_message(P.parse_frames(got)[0][4]))

# responder side too, for completeness (accepts client messages)
s = XX(False, hexv["server_static_private"], P.prologue(), e_priv=hexv["server_ephemeral_private"])
s.read1(P.parse_handshake_packet(hexv["client_message_1"]))
check("server_message_2", P.handshake_packet(s.write2(P.hs_payload(P.capabilities(codecs=3)))))
s.read3(P.parse_handshake_packet(hexv["client_message_3"]))
check("handshake_hash", s.h)
print("ALL MATCH" if ok else "SOME MISMATCH")
sys.exit(0 if ok else 1)
