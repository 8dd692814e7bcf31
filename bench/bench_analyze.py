#!/usr/bin/env python3
"""Benchmark: `gdoi analyze --json` against `tshark -d udp.port==848,isakmp -T json`.

Generates a capture of N GROUPKEY-PUSH rekeys (AES-256 KEK, ECDSA P-256 or RSA-2048
signatures, 2 TEKs, GAP) each followed by an RFC 8263 ACK from a member, then measures,
in the same run and on the same file:

* gdoi analyze (subprocess, JSON Lines to /dev/null): decrypts every rekey, verifies its
  signature, checks every ACK HASH and matches it to its rekey;
* tshark with the ISAKMP dissector on UDP 848 (JSON to /dev/null): dissects headers only;
  it cannot decrypt the rekeys or check anything.

Prints messages per second for both and the ratio. Usage:
    python bench/bench_analyze.py [--rekeys 10000] [--signer ecdsa|rsa] [--repeat 3]
                                  [--keep DIR]
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scapy_gdoi import _consts as C
from scapy_gdoi import ack, crypto, wire
from scapy_gdoi.forge import GAPPolicy, PushPolicy, TEKPolicy, build_push
from scapy_gdoi.rekey import KEKContext

KS, GROUP, MEMBER = bytes([10, 0, 0, 1]), bytes([239, 1, 1, 1]), bytes([10, 0, 0, 5])


def _checksum(header):
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF


def udp_frame(src, dst, payload):
    """Ethernet / IPv4 / UDP 848 -> 848 around a GDOI message (byte-exact, no Scapy)."""
    udp = struct.pack("!HHHH", C.GDOI_UDP_PORT, C.GDOI_UDP_PORT, 8 + len(payload), 0)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(payload), 0, 0,
                               64, 17, 0, src, dst))
    struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
    ether = b"\x01\x00\x5e\x01\x01\x01" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + bytes(ip) + udp + payload


def generate(path, rekeys, signer_kind):
    """Write the capture; return (KEKContext for the receiver, message count)."""
    signer = (ec.generate_private_key(ec.SECP256R1()) if signer_kind == "ecdsa"
              else rsa.generate_private_key(65537, 2048))
    kek = KEKContext(os.urandom(16), "aes", os.urandom(32), os.urandom(16),
                     private_key=signer, ack_method=C.KEK_ACK_SHA256)
    template = bytes(build_push(PushPolicy(
        kek, 1, teks=[TEKPolicy(0x1111), TEKPolicy(0x2222)],
        gap=GAPPolicy(atd=30, d3p_type=C.D3P_TS_POSIX_TIME_MSEC, d3p_window_ms=5000),
        ack_requested=C.KEK_ACK_SHA256)))
    ack_template = bytes(ack.build_ack_for(kek.spi, 1, "10.0.0.5", kek.key, C.KEK_ACK_SHA256))
    seq_at = wire.HEADER_LEN + 4  # SEQ is the first payload: its value follows its header
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for seq in range(1, rekeys + 1):
            plain = template[:seq_at] + struct.pack("!I", seq) + template[seq_at + 4:]
            _record(out, seq, udp_frame(KS, GROUP, kek.seal_bytes(plain)))
            _record(out, seq, udp_frame(MEMBER, KS, _ack_for(kek, ack_template, seq)))
    return kek, 2 * rekeys


def _ack_for(kek, template, seq):
    # Same layout as the template; new SEQ, HASH recomputed (DECISIONS.md §2).
    raw = bytearray(template)
    info = ack.parse_ack(template)
    seq_offset = len(template) - len(info.id_bytes) - len(info.seq_bytes)
    struct.pack_into("!I", raw, seq_offset + 4, seq)
    info = ack.parse_ack(bytes(raw))
    value = crypto.ack_hash(kek.key, kek.spi, C.KEK_ACK_SHA256, info.seq_bytes, info.id_bytes)
    hash_at = wire.HEADER_LEN + wire.GENERIC_PAYLOAD_HEADER_LEN
    raw[hash_at:hash_at + len(value)] = value
    return bytes(raw)


def _record(out, seconds, frame):
    out.write(struct.pack("<IIII", 1700000000 + seconds, 0, len(frame), len(frame)))
    out.write(frame)


def timed(command, repeat):
    """Best wall time of `repeat` runs (other load on the machine only adds time)."""
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            subprocess.run(command, stdout=sink, stderr=subprocess.PIPE, check=True)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rekeys", type=int, default=10000)
    parser.add_argument("--signer", choices=("ecdsa", "rsa"), default="ecdsa")
    parser.add_argument("--keep", help="directory to keep the generated files in")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (best kept)")
    args = parser.parse_args(argv)
    workdir = args.keep or tempfile.mkdtemp(prefix="bench_analyze_")
    os.makedirs(workdir, exist_ok=True)
    try:
        return measure(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir)


def measure(args, workdir):
    capture = os.path.join(workdir, "rekeys_and_acks.pcap")
    keys_path = os.path.join(workdir, "keys.json")
    start = time.perf_counter()
    kek, messages = generate(capture, args.rekeys, args.signer)
    print("generated %d messages (%d rekeys + %d ACKs, %s) in %.1f s: %s (%.1f MB)" % (
        messages, args.rekeys, args.rekeys, args.signer, time.perf_counter() - start,
        capture, os.path.getsize(capture) / 1e6))
    with open(keys_path, "w") as handle:
        json.dump({"keks": [{"spi": kek.spi.hex(), "algorithm": "aes", "key": kek.key.hex(),
                             "iv": kek.iv.hex(), "ack": "sha256"}],
                   "signing_keys": [{"spi": kek.spi.hex(), "public_key_pem": kek.public_key
                                     .public_bytes(*_pem()).decode()}]}, handle)

    # Sanity: every rekey must decrypt and verify, every ACK match, or the figure lies.
    check = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze", capture,
                            "--keys", keys_path, "--json"], capture_output=True, text=True,
                           check=True)
    reports = [json.loads(line) for line in check.stdout.splitlines()]
    valid = sum(r["signature"] == "valid" for r in reports)
    matched = sum(bool(r["ack"] and r["ack"]["hash"] == "valid" and r["ack"]["rekey_frame"])
                  for r in reports)
    print("check: %d messages, %d rekeys decrypted+valid, %d ACKs valid+matched" % (
        len(reports), valid, matched))
    if len(reports) != messages or valid != args.rekeys or matched != args.rekeys:
        print("FAILED: the analysis did not prove every message", file=sys.stderr)
        return 1

    gdoi_s = timed([sys.executable, "-m", "scapy_gdoi.cli", "analyze", capture, "--keys",
                    keys_path, "--json"], args.repeat)
    print("gdoi analyze --json (decrypt + verify + ACK HASH + matching): %.2f s, %.0f msg/s"
          % (gdoi_s, messages / gdoi_s))
    tshark = shutil.which("tshark")
    if tshark is None:
        print("tshark not installed: no comparison")
        return 0
    tshark_s = timed([tshark, "-r", capture, "-d", "udp.port==848,isakmp", "-T", "json"],
                     args.repeat)
    print("tshark -d udp.port==848,isakmp -T json (headers only, cannot decrypt): "
          "%.2f s, %.0f msg/s" % (tshark_s, messages / tshark_s))
    print("ratio gdoi/tshark: %.2fx (best of %d runs each)" % (
        (messages / gdoi_s) / (messages / tshark_s), args.repeat))
    return 0


def _pem():
    from cryptography.hazmat.primitives import serialization
    return serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo


if __name__ == "__main__":
    sys.exit(main())
