"""`gdoi analyze`: the real gdoid rekeys, forged traffic for every cipher and signer, key
learning, SEQ tracking, ACK matching, and bad input that must never stop the analysis."""
import json
import os
import struct
import subprocess
import sys

import pytest

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import PcapNgWriter, PcapReader  # noqa: E402

from scapy_gdoi import _consts as C  # noqa: E402
from scapy_gdoi import ack, crypto, wire  # noqa: E402
from scapy_gdoi.analyze import analyze_capture  # noqa: E402
from scapy_gdoi.forge import GAPPolicy, PushPolicy, TEKPolicy, forge_push  # noqa: E402
from scapy_gdoi.keys import KeyStore, KeysFileError  # noqa: E402
from scapy_gdoi.rekey import KEKContext  # noqa: E402

from capture_helpers import GROUP, KS, MEMBER, udp848, write_pcap  # noqa: E402


# -- helpers --------------------------------------------------------------------------------

def run(path, keystore=None):
    return list(analyze_capture(path, keystore))


def by_frame(reports):
    return {r["frame"]: r for r in reports}


def keystore_for(*keks):
    store = KeyStore()
    for kek in keks:
        public = kek.private_key.public_key() if kek.private_key else None
        store.add_kek(KEKContext(kek.spi, kek.cipher.name, kek.key, kek.iv, sig_hash=None,
                                 public_key=public))
    return store


def new_kek(name="aes", key_len=16, signer=None, **kwargs):
    block = crypto.kek_cipher(name).block_size
    return KEKContext(os.urandom(16), name, os.urandom(key_len), os.urandom(block),
                      private_key=signer, **kwargs)


@pytest.fixture(scope="module")
def p256():
    return ec.generate_private_key(ec.SECP256R1())


def push(kek, seq, **kwargs):
    kwargs.setdefault("teks", [TEKPolicy(0x1000 + seq)])
    return bytes(forge_push(PushPolicy(kek, seq, server=KS, group=GROUP, **kwargs)))


# -- the real gdoid capture ------------------------------------------------------------------

def test_cli_decrypts_and_verifies_the_gdoid_rekeys(vectors_dir):
    out = subprocess.run(
        [sys.executable, "-m", "scapy_gdoi.cli", "analyze",
         str(vectors_dir / "gdoid-3clients-ks.pcap"), "--keys",
         str(vectors_dir / "keys.json"), "--json"],
        capture_output=True, text=True, check=True, timeout=300)
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["frame"] for r in reports] == list(range(1, 33))
    kinds = [r["kind"] for r in reports]
    assert kinds.count("phase1") == 18 and kinds.count("pull") == 12
    assert all(not r["decrypted"] for r in reports if r["kind"] == "pull")
    logged = json.loads((vectors_dir / "gdoid-3clients-ks.vectors.json").read_text())
    plaintexts = {m["frame"]: m.get("plaintext_body_hex_from_log") for m in logged["messages"]}
    for frame, seq in ((31, 1), (32, 2)):
        report = reports[frame - 1]
        assert report["kind"] == "rekey" and report["exchange"] == "GROUPKEY-PUSH"
        assert report["kek_spi"] == b"abcdefgh01234567".hex()
        assert report["decrypted"] is True and report["signature"] == "valid"
        assert report["sig_hash"] == "SHA1"
        assert report["seq"] == seq and report["error"] is None
        assert report["kek"]["algorithm"] == "3des" and report["kek"]["key_bits"] == 192
        # Independent oracle: the TEK SPIs reported are the ones in the logged plaintext
        # (SA TEK: ... Transform ID, then the SPI).
        assert len(report["teks"]) == 2
        for tek in report["teks"]:
            assert "03" + tek["spi"] in plaintexts[frame]
            assert tek["protocol"] == "ESP" and tek["transform"] == "ESP_3DES"
    assert reports[31]["seq_status"] == "ok"


def test_cli_text_report(vectors_dir):
    out = subprocess.run(
        [sys.executable, "-m", "scapy_gdoi.cli", "analyze",
         str(vectors_dir / "gdoid-3clients-ks.pcap"), "--keys", str(vectors_dir / "keys.json")],
        capture_output=True, text=True, check=True, timeout=300).stdout
    assert "seq 2  decrypted  sig valid (SHA1)" in out
    assert out.splitlines()[-1].startswith("Summary: 18 phase1, 12 pull, 2 rekey")


def test_without_keys_rekeys_are_reported_undecrypted(vectors_dir):
    reports = by_frame(run(vectors_dir / "gdoid-3clients-ks.pcap"))
    assert reports[31]["decrypted"] is False
    assert reports[31]["signature"] == "unverified"
    assert "cannot decrypt: no KEK" in reports[31]["error"]


def test_keys_learned_from_a_plaintext_pull_decrypt_later_rekeys(tmp_path, vectors_dir):
    # PULL messages 2 (SA KEK: 3DES, SHA-1, RSA) and 4 (KD: KEK key, RSA key) in
    # plaintext from the DERIVED capture, then the two real encrypted rekeys.
    with PcapReader(str(vectors_dir / "gdoid-3clients-ks-plaintext-DERIVED.pcap")) as r:
        derived = [bytes(p) for p in r]
    with PcapReader(str(vectors_dir / "gdoid-3clients-ks.pcap")) as r:
        wire_frames = [bytes(p) for p in r]
    path = write_pcap(tmp_path / "learn.pcap",
                      [derived[7], derived[9], wire_frames[30], wire_frames[31]])
    reports = run(path)
    assert reports[1]["learned_keks"] == [b"abcdefgh01234567".hex()]
    for report in reports[2:]:
        assert report["decrypted"] and report["signature"] == "valid"
        assert report["sig_hash"] == "SHA1"  # from the SA KEK, not guessed
    assert [r["seq_status"] for r in reports[2:]] == ["ok", "ok"]  # baseline: PULL SEQ 0


# -- forged traffic: every cipher and signer -------------------------------------------------

SIGNERS = {
    "rsa-2048": lambda: rsa.generate_private_key(65537, 2048),
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ecdsa-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
}
CIPHERS = [("des", 8), ("3des", 24), ("aes", 16), ("aes", 24), ("aes", 32)]


@pytest.mark.parametrize("signer_name", list(SIGNERS))
@pytest.mark.parametrize("cipher, key_len", CIPHERS)
def test_round_trip_every_cipher_and_signer(tmp_path, cipher, key_len, signer_name):
    signer = SIGNERS[signer_name]()
    kek = new_kek(cipher, key_len, signer, ack_method=C.KEK_ACK_SHA384)
    gap = GAPPolicy(atd=45, dtd=90, d3p_type=C.D3P_TS_POSIX_TIME_MSEC, d3p_window_ms=2500)
    teks = [TEKPolicy(0xA1B2C3D4), TEKPolicy(0x01020304, transform="ESP_3DES",
                                             key_bits=None, auth="HMAC-SHA")]
    good = push(kek, 11, teks=teks, gap=gap, ack_requested=C.KEK_ACK_SHA384)
    flipped_cipher = bytearray(good)
    flipped_cipher[len(good) // 2] ^= 0x01
    member_ack = bytes(ack.build_ack(good, MEMBER, kek, method=C.KEK_ACK_SHA384))
    frames = [udp848(good), udp848(bytes(flipped_cipher)),
              udp848(member_ack, src=MEMBER, dst=KS),
              udp848(push(kek, 12), src="2001:db8::1", dst="ff05::1")]
    reports = run(write_pcap(tmp_path / "rt.pcap", frames), keystore_for(kek))
    first = reports[0]
    assert first["decrypted"] and first["signature"] == "valid" and first["error"] is None
    assert first["seq"] == 11
    assert first["gap"] == {"atd": 45, "dtd": 90, "d3p_type": 1, "d3p_window_ms": 2500}
    assert first["kek"]["algorithm"] == cipher and first["kek"]["key_bits"] == key_len * 8
    assert first["kek"]["ack_requested"] == "REKEY_ACK_KEK_SHA384"
    assert first["teks"] == [
        {"spi": "a1b2c3d4", "protocol": "ESP", "transform": "ESP_AES-CBC"},
        {"spi": "01020304", "protocol": "ESP", "transform": "ESP_3DES"}]
    assert reports[1]["signature"] == "invalid"
    assert reports[1]["seq_status"] is None  # an invalid rekey does not move the SEQ
    assert reports[2]["kind"] == "ack"
    assert reports[2]["ack"] == {"seq": 11, "id": MEMBER, "hash": "valid", "rekey_frame": 1,
                                 "reason": None}
    assert reports[3]["src"] == "2001:db8::1"
    assert reports[3]["signature"] == "valid" and reports[3]["seq_status"] == "ok"


def test_flipped_signature_bit_is_invalid(tmp_path, p256):
    kek = new_kek(signer=p256)
    plain = bytearray(kek.decrypt_bytes(push(kek, 1)))
    sig_len = 64
    sig_start = len(plain) - (len(plain) - _unpadded_length(plain)) - sig_len
    plain[sig_start + 10] ^= 0x80
    frames = [udp848(kek.encrypt_bytes(bytes(plain))), udp848(push(kek, 2))]
    reports = run(write_pcap(tmp_path / "sig.pcap", frames), keystore_for(kek))
    assert reports[0]["decrypted"] and reports[0]["signature"] == "invalid"
    assert reports[1]["signature"] == "valid"


def _unpadded_length(plain):
    from scapy_gdoi import wire
    header = wire.Header(plain)
    end = 0
    for _, offset, data in wire.iter_payloads(header.next_payload, plain[28:]):
        end = offset + len(data)
    return 28 + end


def test_wrong_kek_is_cannot_decrypt_and_the_analysis_goes_on(tmp_path, p256):
    kek = new_kek(signer=p256)
    wrong = KEKContext(kek.spi, "aes", os.urandom(16), kek.iv)
    other = new_kek(signer=p256)
    frames = [udp848(push(kek, 1)), udp848(push(other, 1))]
    store = keystore_for(other)
    store.add_kek(wrong)
    reports = run(write_pcap(tmp_path / "wrong.pcap", frames), store)
    assert reports[0]["decrypted"] is False
    assert reports[0]["error"].startswith("cannot decrypt with the KEK of SPI")
    assert reports[1]["decrypted"] and reports[1]["signature"] == "valid"


@pytest.mark.parametrize("with_signing_key", [False, True])
def test_wrong_kek_leaves_the_signature_unverified(tmp_path, p256, with_signing_key):
    """A wrong KEK never gets to the signature: it was not checked, so not "invalid"."""
    kek = new_kek(signer=p256)
    wrong = KEKContext(kek.spi, "aes", os.urandom(16), kek.iv,
                       public_key=p256.public_key() if with_signing_key else None)
    store = KeyStore()
    store.add_kek(wrong)
    reports = run(write_pcap(tmp_path / "wrong.pcap", [udp848(push(kek, 1))]), store)
    assert reports[0]["decrypted"] is False
    assert reports[0]["signature"] == "unverified"
    assert reports[0]["error"].startswith("cannot decrypt with the KEK of SPI %s"
                                          % kek.spi.hex())


@pytest.mark.parametrize("with_signing_key", [False, True])
def test_altered_ciphertext_after_a_clean_first_block_is_invalid(tmp_path, p256,
                                                                   with_signing_key):
    kek = new_kek(signer=p256)
    sent = push(kek, 1)
    plain = kek.decrypt_bytes(sent)
    kd_offset = next(offset for ptype, offset, _ in
                     wire.iter_payloads(wire.Header(plain).next_payload, plain[28:])
                     if ptype == C.PT_KD)
    # CBC: flipping a bit of ciphertext block k-1 flips the same bit of plaintext block
    # k (and garbles block k-1, here inside the SA): the KD Length becomes too large,
    # while the first block still decrypts to the SEQ payload.
    altered = bytearray(sent)
    altered[28 + kd_offset + wire.PAYLOAD_LENGTH_OFFSET - 16] ^= 0x80
    assert kd_offset + wire.PAYLOAD_LENGTH_OFFSET - 16 >= 16
    store = keystore_for(kek) if with_signing_key else KeyStore()
    if not with_signing_key:
        store.add_kek(KEKContext(kek.spi, "aes", kek.key, kek.iv))
    reports = run(write_pcap(tmp_path / "alt.pcap", [udp848(bytes(altered))]), store)
    assert reports[0]["decrypted"] is False and reports[0]["signature"] == "invalid"
    assert reports[0]["error"].startswith("altered ciphertext: the KEK of SPI")
    # The first block altered cannot be told from a wrong KEK: unverified.
    first = bytearray(push(kek, 2))
    first[28] ^= 0x40
    report = run(write_pcap(tmp_path / "alt1.pcap", [udp848(bytes(first))]), store)[0]
    assert report["signature"] == "unverified" and "cannot decrypt" in report["error"]


def test_kek_not_learnt_without_a_signing_key_says_why(tmp_path, p256):
    kek = new_kek(signer=p256)
    successor = new_kek(signer=p256, ack_method=C.KEK_ACK_SHA256)
    member_ack = ack.build_ack(push(successor, 1, ack_requested=C.KEK_ACK_SHA256),
                               MEMBER, successor)
    frames = [udp848(push(kek, 1, new_kek=successor)), udp848(push(successor, 1)),
              udp848(bytes(member_ack), src=MEMBER, dst=KS)]
    unsigned = KeyStore()
    unsigned.add_kek(KEKContext(kek.spi, "aes", kek.key, kek.iv))
    reports = run(write_pcap(tmp_path / "roll.pcap", frames), unsigned)
    assert reports[0]["signature"] == "unverified" and reports[0]["learned_keks"] is None
    why = ("no KEK known for SPI %s: rekey #1 announced it, but it was not learnt: keys "
           "are only learnt from rekeys whose signature verifies" % successor.spi.hex())
    assert why in reports[1]["error"] and "add a signing key" in reports[1]["error"]
    assert why in reports[2]["ack"]["reason"]
    # With the signing key the same capture teaches the new KEK (the rule is unchanged).
    reports = run(write_pcap(tmp_path / "roll2.pcap", frames), keystore_for(kek))
    assert reports[0]["learned_keks"] == [successor.spi.hex()]
    assert reports[1]["signature"] == "valid" and reports[2]["ack"]["hash"] == "valid"


def test_new_kek_from_a_rekey_is_used_for_the_next_one(tmp_path, p256):
    kek = new_kek(signer=p256)
    successor = new_kek("aes", 32, p256)
    frames = [udp848(push(kek, 1, new_kek=successor)), udp848(push(successor, 2))]
    reports = run(write_pcap(tmp_path / "chain.pcap", frames), keystore_for(kek))
    assert reports[0]["learned_keks"] == [successor.spi.hex()]
    assert reports[1]["decrypted"] and reports[1]["signature"] == "valid"
    assert reports[1]["kek_spi"] == successor.spi.hex()


def test_deletes_are_reported(tmp_path, p256):
    kek = new_kek(signer=p256)
    frames = [udp848(push(kek, 1, deletes=[(C.TEK_PROTO_ESP, [b"\x00\x00\x10\x01"])]))]
    (report,) = run(write_pcap(tmp_path / "del.pcap", frames), keystore_for(kek))
    assert report["deletes"] == [{"protocol": C.TEK_PROTO_ESP, "spis": ["00001001"]}]


def test_sequence_replays_and_gaps_are_reported(tmp_path, p256):
    kek = new_kek(signer=p256)
    frames = [udp848(push(kek, seq)) for seq in (1, 2, 2, 5, 6)]
    reports = run(write_pcap(tmp_path / "seq.pcap", frames), keystore_for(kek))
    assert [r["seq_status"] for r in reports] == ["first", "ok", "replay", "gap", "ok"]
    assert "replay" in reports[2]["error"]
    assert reports[3]["error"] == "2 rekey(s) missing before SEQ 5"


def test_acks_are_checked_and_matched(tmp_path, p256):
    kek = new_kek(signer=p256, ack_method=C.KEK_ACK_SHA256)
    rekey = push(kek, 3, ack_requested=C.KEK_ACK_SHA256)
    good = bytes(ack.build_ack(rekey, MEMBER, kek))
    tampered = bytearray(good)
    tampered[40] ^= 1
    unmatched = bytes(ack.build_ack_for(kek.spi, 99, MEMBER, kek.key, C.KEK_ACK_SHA256))
    cisco = bytes(ack.build_cisco_ack(kek, 3, "10.0.0.6"))
    frames = [udp848(rekey), udp848(good, MEMBER, KS), udp848(bytes(tampered), MEMBER, KS),
              udp848(unmatched, MEMBER, KS), udp848(cisco, "10.0.0.6", KS),
              udp848(good, MEMBER, KS)]
    reports = run(write_pcap(tmp_path / "acks.pcap", frames), keystore_for(kek))
    assert reports[1]["ack"] == {"seq": 3, "id": MEMBER, "hash": "valid", "rekey_frame": 1,
                                 "reason": None}
    assert reports[2]["ack"]["hash"] == "invalid" and reports[2]["ack"]["rekey_frame"] is None
    assert reports[3]["ack"]["hash"] == "valid" and reports[3]["ack"]["rekey_frame"] is None
    assert reports[4]["kind"] == "cisco-ack" and reports[4]["decrypted"]
    # A Cisco ACK has no HASH: decrypted and well formed, but never "valid".
    assert reports[4]["ack"] == {"seq": 3, "id": "10.0.0.6", "hash": "unverified",
                                 "rekey_frame": 1, "reason": ack.CISCO_ACK_UNVERIFIED_REASON}
    assert "duplicate ACK" in reports[5]["error"]
    # Without the KEK the ACK HASH cannot be checked.
    reports = run(tmp_path / "acks.pcap")
    assert reports[1]["ack"]["hash"] == "unverified"
    assert reports[1]["ack"]["reason"] == "no KEK known for SPI %s" % kek.spi.hex()


def test_rekey_relabelled_as_cisco_ack_is_an_invalid_ack(tmp_path, p256):
    # Review finding: exchange byte 33 -> 34 turned a rekey into a "valid" Cisco ACK,
    # since it decrypts under the static IV and its chain holds a SEQ.
    kek = new_kek(signer=p256)
    rekey = push(kek, 7)
    relabelled = bytearray(rekey)
    relabelled[wire.EXCH_TYPE_OFFSET] = C.EXCH_CISCO_REKEY_ACK
    frames = [udp848(rekey), udp848(bytes(relabelled), MEMBER, KS)]
    reports = run(write_pcap(tmp_path / "reflect.pcap", frames), keystore_for(kek))
    assert reports[1]["kind"] == "cisco-ack"
    assert reports[1]["ack"]["hash"] == "invalid"
    assert reports[1]["ack"]["rekey_frame"] is None
    assert "expected exactly SEQ, ID" in reports[1]["error"]


def test_encrypted_message_under_a_known_kek_spi_is_a_cisco_ack(tmp_path, p256):
    # The Cisco ACK's exchange byte is undocumented: any encrypted message whose cookies
    # are a known KEK SPI, other than a PUSH or an RFC 8263 ACK, is classified as one.
    kek = new_kek(signer=p256)
    other_exchange = bytearray(bytes(ack.build_cisco_ack(kek, 4, MEMBER)))
    other_exchange[wire.EXCH_TYPE_OFFSET] = C.EXCH_GROUPKEY_PULL
    frames = [udp848(push(kek, 4)), udp848(bytes(other_exchange), MEMBER, KS)]
    reports = run(write_pcap(tmp_path / "fallback.pcap", frames), keystore_for(kek))
    assert reports[1]["kind"] == "cisco-ack" and reports[1]["decrypted"]
    assert reports[1]["ack"]["seq"] == 4 and reports[1]["ack"]["rekey_frame"] == 1
    # Without the KEK it stays what its exchange says.
    assert run(tmp_path / "fallback.pcap")[1]["kind"] == "pull"


def test_pcapng_and_ipv6(tmp_path, p256):
    kek = new_kek(signer=p256)
    path = str(tmp_path / "ng.pcapng")
    with PcapNgWriter(path) as writer:
        for seq in (1, 2):
            writer.write(Ether(udp848(push(kek, seq), src="2001:db8::1", dst="ff05::1")))
    reports = run(path, keystore_for(kek))
    assert [(r["seq"], r["signature"], r["src"]) for r in reports] == [
        (1, "valid", "2001:db8::1"), (2, "valid", "2001:db8::1")]


@pytest.mark.parametrize("linktype, framing", [
    (101, lambda frame: frame[14:]),  # LINKTYPE_RAW: the IP packet itself
    (1, lambda frame: frame[:12] + b"\x81\x00\x00\x64" + frame[12:]),  # 802.1Q VLAN 100
    (113, lambda frame: bytes(14) + frame[12:]),  # Linux cooked capture (SLL)
    (0, lambda frame: struct.pack("<I", 2) + frame[14:]),  # BSD loopback, AF_INET
    # Review findings: these were dropped silently.
    (104, lambda frame: b"\x0f\x00\x08\x00" + frame[14:]),  # Cisco HDLC
    (9, lambda frame: b"\xff\x03\x00\x21" + frame[14:]),  # PPP, HDLC-like framing
    (9, lambda frame: b"\x21" + frame[14:]),  # PPP, address/control + protocol compressed
    (50, lambda frame: b"\xff\x03\x00\x21" + frame[14:]),  # PPP in HDLC
    (1, lambda frame: frame[:12] + b"\x88\x47\x00\x01\x00\x40\x00\x02\x01\x40"
     + frame[14:]),  # MPLS, two labels
    (1, lambda frame: frame[:12] + b"\x88\x64\x11\x00\x00\x01"
     + struct.pack("!H", len(frame) - 12) + b"\x00\x21" + frame[14:]),  # PPPoE session
    # TCP segmentation offload: IPv4 Total Length 0, the frame holds the whole packet.
    (1, lambda frame: frame[:16] + b"\x00\x00" + frame[18:]),
])
def test_other_link_types(tmp_path, p256, linktype, framing):
    kek = new_kek(signer=p256)
    path = write_pcap(tmp_path / "link.pcap", [framing(udp848(push(kek, 1)))], linktype)
    (report,) = run(path, keystore_for(kek))
    assert report["signature"] == "valid" and report["src"] == KS


def test_unsupported_framing_is_warned_once_per_capture(tmp_path, p256):
    kek = new_kek(signer=p256)
    frame = udp848(push(kek, 1))
    hidden = frame[:12] + b"\x88\xb5" + frame[14:]  # local experimental ethertype
    path = write_pcap(tmp_path / "eth.pcap", [hidden, hidden, frame,
                                              frame[:12] + b"\x08\x06" + bytes(28)])  # ARP
    result = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze", str(path)],
                            capture_output=True, text=True, check=True)
    warning = "ethertype 0x88b5 is not supported: its frames were skipped"
    assert result.stderr.count(warning) == 1 and "0x0806" not in result.stderr
    assert result.stdout.splitlines()[-1] == "Warnings: " + warning
    path = write_pcap(tmp_path / "user.pcap", [frame[14:]] * 3, linktype=147)
    result = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze", str(path),
                             "--json"], capture_output=True, text=True, check=True)
    assert result.stdout == ""
    assert result.stderr.count("link type 147 is not supported") == 1


def test_capture_cut_inside_a_record_header_ends_with_an_error(tmp_path, p256):
    kek = new_kek(signer=p256)
    path = write_pcap(tmp_path / "hdr.pcap", [udp848(push(kek, 1))])
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03")
    reports = run(path, keystore_for(kek))
    assert reports[0]["signature"] == "valid"
    assert reports[-1]["error"] == "capture file cut inside the record header after frame 1"
    assert len(reports) == 2


@pytest.mark.parametrize("cut", [4, 20, 40])
def test_pcapng_cut_inside_a_block_ends_with_an_error(tmp_path, p256, cut):
    kek = new_kek(signer=p256)
    path = tmp_path / "cut.pcapng"
    with PcapNgWriter(str(path)) as writer:
        for seq in (1, 2):
            writer.write(Ether(udp848(push(kek, seq))))
    whole = run(path, keystore_for(kek))
    assert [r["error"] for r in whole] == [None, None]
    path.write_bytes(path.read_bytes()[:-cut])
    reports = run(path, keystore_for(kek))
    assert reports[0]["signature"] == "valid"
    assert reports[-1]["error"] == "capture file cut inside the block after frame 1"


def test_fragmented_rekey_is_reassembled(tmp_path, p256):
    from scapy.layers.inet import fragment
    kek = new_kek(signer=rsa.generate_private_key(65537, 4096))
    datagram = IP(src=KS, dst=GROUP, id=77) / UDP(sport=848, dport=848) / push(kek, 1)
    frames = [bytes(Ether() / frag) for frag in fragment(datagram, fragsize=256)]
    assert len(frames) > 2
    reports = run(write_pcap(tmp_path / "frag.pcap", frames[::-1]), keystore_for(kek))
    assert len(reports) == 1 and reports[0]["signature"] == "valid"


def _ip4_fragment(ident, offset, more, data, src=KS):
    """A raw IPv4 UDP fragment (LINKTYPE_RAW); offset in octets."""
    flags = (0x2000 if more else 0) | (offset // 8)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, flags, 64, 17, 0,
                       bytes(map(int, src.split("."))), bytes([239, 1, 1, 1])) + data


def _fragments(frames):
    from scapy_gdoi.capture import CaptureNotices, _Reassembler, datagram_of
    reassembler, notices, out = _Reassembler(), CaptureNotices(), []
    for number, frame in enumerate(frames, 1):
        out += datagram_of(number, 0, 101, frame, reassembler, notices)
    return out, reassembler


def _udp_header(sport, dport, length):
    return struct.pack("!HHHH", sport, dport, length, 0)


def test_duplicate_fragments_are_ignored(tmp_path, p256):
    from scapy.layers.inet import fragment
    kek = new_kek(signer=p256)
    datagram = IP(src=KS, dst=GROUP, id=5) / UDP(sport=848, dport=848) / push(kek, 1)
    frames = [bytes(Ether() / frag) for frag in fragment(datagram, fragsize=128)]
    reports = run(write_pcap(tmp_path / "dup.pcap", frames[:2] + frames[1:]),
                  keystore_for(kek))
    assert len(reports) == 1 and reports[0]["signature"] == "valid"


def test_overlapping_fragments_drop_the_set_once():
    first = _ip4_fragment(7, 0, True, _udp_header(848, 848, 3000) + bytes(1472))
    overlapping = [_ip4_fragment(7, 8 * i, True, bytes(1480)) for i in range(1, 50)]
    out, reassembler = _fragments([first] + overlapping + [_ip4_fragment(7, 2960, False,
                                                                        bytes(40))])
    assert [(d.frame, d.error) for d in out] == [
        (1, "IP fragments dropped: overlapping fragments (RFC 5722)")]
    assert not reassembler.pending


def test_fragment_sets_are_capped_in_parts_and_octets():
    from scapy_gdoi.capture import MAX_FRAGMENT_PARTS, MAX_REASSEMBLED_OCTETS
    first = _ip4_fragment(8, 0, True, _udp_header(848, 848, 9000) + bytes(8))
    tiny = [_ip4_fragment(8, 16 + 8 * i, True, bytes(8)) for i in range(MAX_FRAGMENT_PARTS)]
    out, reassembler = _fragments([first] + tiny)
    assert [(d.frame, d.error) for d in out] == [
        (1, "IP fragments dropped: more than %d fragments" % MAX_FRAGMENT_PARTS)]
    assert not reassembler.pending
    past_the_limit = _ip4_fragment(9, (MAX_REASSEMBLED_OCTETS // 8) * 8, False, bytes(16))
    out, _ = _fragments([_ip4_fragment(9, 0, True, _udp_header(848, 848, 9000) + bytes(8)),
                         past_the_limit])
    assert [d.error for d in out] == [
        "IP fragments dropped: the datagram would exceed %d octets" % MAX_REASSEMBLED_OCTETS]


def test_fragments_of_other_udp_traffic_are_dropped_and_never_reported(tmp_path):
    dns_first = _ip4_fragment(11, 0, True, _udp_header(53, 53, 3000) + bytes(1472))
    dns_rest = [_ip4_fragment(11, 1480, True, bytes(1480))]  # the last one is lost
    out, reassembler = _fragments([dns_first] + dns_rest)
    assert out == [] and not reassembler.pending
    # Through a whole capture: no GDOI error for them, before or at the end.
    path = write_pcap(tmp_path / "dns.pcap", dns_rest + [dns_first] + dns_rest, 101)
    assert run(path) == []
    # A set whose first fragment (with the ports) never came: not a GDOI error either,
    # but the capture says it dropped it.
    from scapy_gdoi.capture import CaptureNotices, iter_datagrams
    notices = CaptureNotices()
    path = write_pcap(tmp_path / "headless.pcap", [_ip4_fragment(12, 1480, True, bytes(8))],
                      101)
    assert list(iter_datagrams(path, notices)) == []
    assert notices.messages == ["1 incomplete UDP fragment set(s) whose first fragment "
                                "(with the ports) was never seen were dropped"]


# -- bad input: reported per frame, never stops the analysis ---------------------------------

def test_bad_input_is_reported_per_frame(tmp_path, p256):
    kek = new_kek(signer=p256)
    good = udp848(push(kek, 1))
    ikev2 = bytes(8) * 2 + bytes([33, 0x20, 34, 0x08]) + struct.pack("!II", 0, 28)
    base_exchange = bytes(16) + bytes([0, 0x10, 1, 0]) + struct.pack("!II", 0, 28)
    frames = [
        (good[:60], len(good)),  # cut by the snap length
        udp848(b"\x01\x02\x03"),  # garbage shorter than a header
        udp848(os.urandom(40)),  # random bytes
        udp848(ikev2),  # IKEv2 on 848
        udp848(base_exchange),  # an ISAKMP exchange GDOI does not use
        udp848(push(kek, 2)[:-16]),  # header Length beyond the datagram
        bytes(Ether() / IP(src=KS, dst=GROUP) / UDP(sport=5000, dport=5001) / b"x"),
        udp848(push(kek, 3)),
    ]
    reports = run(write_pcap(tmp_path / "bad.pcap", frames), keystore_for(kek))
    frames_seen = by_frame(reports)
    assert sorted(frames_seen) == [1, 2, 3, 4, 5, 6, 8]  # frame 7 is not GDOI
    assert "truncated" in frames_seen[1]["error"]
    assert "truncated ISAKMP header" in frames_seen[2]["error"]
    assert frames_seen[3]["error"] and frames_seen[3]["kind"] == "other"
    assert frames_seen[4]["error"] == "not GDOI: ISAKMP version 2.0"
    assert "not a GDOI exchange" in frames_seen[5]["error"]
    assert "truncated message" in frames_seen[6]["error"]
    assert frames_seen[8]["signature"] == "valid" and frames_seen[8]["error"] is None


def test_truncated_capture_file_ends_with_an_error(tmp_path, p256):
    kek = new_kek(signer=p256)
    path = write_pcap(tmp_path / "cut.pcap", [udp848(push(kek, s)) for s in (1, 2)])
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    reports = run(path, keystore_for(kek))
    assert reports[0]["signature"] == "valid"
    assert len(reports) == 2
    assert reports[1]["error"].startswith("frame truncated by the capture")
    frame_len = len(udp848(push(kek, 2)))
    assert ("capture file cut inside frame 2: record says %d octets, %d present"
            % (frame_len, frame_len - 30)) in reports[1]["error"]


def test_cut_capture_reports_once_without_scapys_bare_warning(tmp_path, p256):
    import logging
    kek = new_kek(signer=p256)
    path = write_pcap(tmp_path / "cut.pcap", [udp848(push(kek, s)) for s in (1, 2)])
    path.write_bytes(path.read_bytes()[:-30])
    out = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "capture file cut inside frame 2" in out.stdout
    assert "packet has been truncated" not in out.stderr + out.stdout
    # The filter is only in place while reading: Scapy's logger is left as found.
    before = list(logging.getLogger("scapy.runtime").filters)
    run(path)
    assert logging.getLogger("scapy.runtime").filters == before


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze", *args],
                          capture_output=True, timeout=120, input=stdin)


def test_text_output_shows_no_python_reprs(tmp_path, p256):
    """Unknown values are left out of the text, never printed as None."""
    kek = new_kek(signer=p256)
    successor = new_kek(signer=p256)
    cisco = ack.build_cisco_ack(kek, 1, MEMBER)
    broken_cisco = bytes(cisco)[:-16] + bytes(16)  # last block altered: not SEQ + ID
    frames = [udp848(push(kek, 1, new_kek=successor)),  # SA KEK without KEK_ACK_REQUESTED
              udp848(broken_cisco, src=MEMBER, dst=KS)]
    path = write_pcap(tmp_path / "text.pcap", frames)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keks": [{"spi": kek.spi.hex(), "algorithm": "aes",
                                          "key": kek.key.hex(), "iv": kek.iv.hex()}]}))
    out = _cli(str(path), "--keys", str(keys))
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr
    assert "KEK %s aes-128\n" % successor.spi.hex() in text  # no "ack=None"
    assert "None" not in text
    assert "cisco-ack" in text and "hash invalid" in text
    assert text.splitlines()[-1].endswith("1 error, 1 signature unverified")


def test_octets_after_the_isakmp_length_are_a_warning(tmp_path, p256):
    kek = new_kek(signer=p256)
    frames = [udp848(push(kek, 1) + b"\xde\xad\xbe"), udp848(push(kek, 2))]
    reports = run(write_pcap(tmp_path / "trail.pcap", frames), keystore_for(kek))
    length = len(push(kek, 1))
    assert reports[0]["warning"] == "3 octet(s) after the ISAKMP Length %d ignored" % length
    assert reports[0]["signature"] == "valid" and reports[0]["error"] is None
    assert reports[1]["warning"] is None
    text = _cli(str(tmp_path / "trail.pcap")).stdout.decode()
    assert "warning: 3 octet(s) after the ISAKMP Length" in text and "1 warning" in text


def test_ack_with_another_method_than_requested_says_so(tmp_path, p256):
    kek = new_kek(signer=p256)
    rekey = push(kek, 1, ack_requested=C.KEK_ACK_SHA256)
    # A member that used SHA-384 anyway (build_ack would refuse: made by hand).
    wrong_method = ack.build_ack_for(kek.spi, 1, MEMBER, kek.key, C.KEK_ACK_SHA384)
    right = ack.build_ack(rekey, "10.0.0.6", kek)
    forged = bytearray(bytes(right))
    forged[40] ^= 1  # a HASH octet: right length, wrong value
    frames = [udp848(rekey), udp848(bytes(wrong_method), src=MEMBER, dst=KS),
              udp848(bytes(right), src="10.0.0.6", dst=KS),
              udp848(bytes(forged), src="10.0.0.6", dst=KS)]
    reports = run(write_pcap(tmp_path / "method.pcap", frames), keystore_for(kek))
    assert reports[1]["ack"]["hash"] == "invalid"
    assert reports[1]["error"] == ("ACK uses SHA-384 but the rekey requested SHA-256 "
                                   "(KEK_ACK_REQUESTED 1, 32-octet HASH)")
    assert reports[2]["ack"]["hash"] == "valid"
    assert reports[3]["error"] == ("ACK HASH does not verify with the KEK of SPI %s"
                                   % kek.spi.hex())


def test_ack_for_a_rekey_requesting_an_unknown_method_is_judged_by_length(tmp_path, p256):
    kek = new_kek(signer=p256)
    rekey = push(kek, 1, ack_requested=4)  # KEK_ACK_REQUESTED no one defines
    member_ack = ack.build_ack(rekey, MEMBER, kek, method="sha256")
    frames = [udp848(rekey), udp848(bytes(member_ack), src=MEMBER, dst=KS)]
    store = keystore_for(kek)
    reports = run(write_pcap(tmp_path / "unknown.pcap", frames), store)
    assert reports[0]["signature"] == "valid" and reports[0]["kek"]["ack_requested"] == "4"
    assert store.kek(kek.spi).ack_method is None  # learnt policy: unknown value dropped
    assert reports[1]["error"] is None and reports[1]["ack"]["hash"] == "valid"
    assert "KEK_ACK_REQUESTED 4, a method this analyser does not know" in (
        reports[1]["ack"]["reason"])


def test_capture_from_standard_input(tmp_path, p256):
    kek = new_kek(signer=p256)
    path = write_pcap(tmp_path / "in.pcap", [udp848(push(kek, s)) for s in (1, 2)])
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keks": [{"spi": kek.spi.hex(), "algorithm": "aes",
                                          "key": kek.key.hex(), "iv": kek.iv.hex()}]}))
    from_file = _cli(str(path), "--keys", str(keys), "--json")
    from_stdin = _cli("-", "--keys", str(keys), "--json", stdin=path.read_bytes())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout
    assert [json.loads(line)["seq"] for line in from_stdin.stdout.splitlines()] == [1, 2]
    bad = _cli("-", stdin=b"not a capture")
    assert bad.returncode == 2 and b"cannot read capture <stdin>" in bad.stderr
    assert b'"-" reads it from standard input' in _cli("--help").stdout


def test_unreadable_capture_and_keys_file_are_clear_cli_errors(tmp_path, vectors_dir):
    not_a_capture = tmp_path / "x.pcap"
    not_a_capture.write_bytes(b"hello world, not a pcap")
    out = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze",
                          str(not_a_capture)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot read capture" in out.stderr
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keks": [{"spi": "zz", "algorithm": "aes", "key": "00",
                                          "iv": "00"}]}))
    out = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze",
                          str(vectors_dir / "gdoid-3clients-ks.pcap"), "--keys", str(keys)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "keks[0]: spi is not hex" in out.stderr


@pytest.mark.parametrize("entry, message", [
    ({"spi": "00" * 16, "key": "00" * 16, "iv": "00" * 16}, "algorithm (aes, 3des or des)"),
    ({"spi": "00" * 16, "algorithm": "rc4", "key": "00" * 16, "iv": "00" * 16},
     "unsupported KEK algorithm"),
    ({"spi": "00" * 15, "algorithm": "aes", "key": "00" * 16, "iv": "00" * 16},
     "spi must be 16 octets"),
    ({"spi": "00" * 16, "algorithm": "aes", "key": "00" * 15, "iv": "00" * 16},
     "key must be"),
    ({"spi": "00" * 16, "algorithm": "aes", "iv": "00" * 16}, "key (a hex string)"),
])
def test_keys_file_errors_name_the_entry(entry, message):
    with pytest.raises(KeysFileError, match="keks\\[0\\]") as info:
        KeyStore.from_dict({"keks": [entry]})
    assert message in str(info.value)


KEK_ENTRY = {"spi": "00" * 16, "algorithm": "aes", "key": "00" * 16, "iv": "00" * 16}


@pytest.mark.parametrize("data, message", [
    ({"kek": [KEK_ENTRY]}, "keys file: unknown key 'kek' (known: keks, signing_keys)"),
    ({"keks": [KEK_ENTRY], "signing_key": []}, "unknown key 'signing_key'"),
    ({}, 'neither "keks" nor "signing_keys"'),
    ({"keks": KEK_ENTRY}, "keks must be a list"),
    ({"keks": [dict(KEK_ENTRY, ivv="00")]}, "keks[0]: unknown key 'ivv'"),
    ({"signing_keys": [{"spi": "00" * 16, "public_key_pem": "x", "pem": "y"}]},
     "signing_keys[0]: unknown key 'pem'"),
    ({"keks": [dict(KEK_ENTRY, ack="sha-1")]}, "keks[0]: unknown ACK method 'sha-1'"),
])
def test_keys_file_with_unknown_names_is_refused(data, message):
    with pytest.raises(KeysFileError) as info:
        KeyStore.from_dict(data)
    assert message in str(info.value)


@pytest.mark.parametrize("spelling", ["sha384", "SHA-384", "REKEY_ACK_KEK_SHA384", 2])
def test_keys_file_ack_accepts_every_method_spelling(spelling):
    store = KeyStore.from_dict({"keks": [dict(KEK_ENTRY, ack=spelling)]})
    assert store.kek(bytes(16)).ack_method == C.KEK_ACK_SHA384


def test_keys_file_typo_is_a_cli_error_naming_the_key(tmp_path, vectors_dir):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"kek": [KEK_ENTRY]}))
    out = subprocess.run([sys.executable, "-m", "scapy_gdoi.cli", "analyze",
                          str(vectors_dir / "gdoid-3clients-ks.pcap"), "--keys", str(keys)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown key 'kek'" in out.stderr, out.stderr


def test_fragment_that_never_completes_is_reported(tmp_path, p256):
    from scapy.layers.inet import fragment
    kek = new_kek(signer=p256)
    datagram = IP(src=KS, dst=GROUP, id=78) / UDP(sport=848, dport=848) / push(kek, 1)
    pieces = [bytes(Ether() / frag) for frag in fragment(datagram, fragsize=64)]
    frames = pieces[:-1] + [udp848(push(kek, 2))]  # last fragment lost
    reports = run(write_pcap(tmp_path / "lost.pcap", frames), keystore_for(kek))
    assert reports[0]["signature"] == "valid" and reports[0]["seq"] == 2
    assert reports[1]["frame"] == 1
    assert reports[1]["error"] == "IP fragments never completed (end of capture)"


def test_memory_stays_flat_on_long_captures(tmp_path, p256):
    import tracemalloc
    from scapy_gdoi.forge import build_push
    kek = new_kek(signer=p256, ack_method=C.KEK_ACK_SHA256)
    template = kek.sign_bytes(build_push(PushPolicy(kek, 1, teks=[TEKPolicy(1)])))
    header = bytes(Ether() / IP(src=KS, dst=GROUP) / UDP(sport=848, dport=848))

    def capture(count):
        path = tmp_path / ("%d.pcap" % count)
        frames = []
        for seq in range(1, count + 1):
            plain = template[:32] + seq.to_bytes(4, "big") + template[36:]
            message = kek.seal_bytes(plain)
            frames.append(header[:16] + (20 + 8 + len(message)).to_bytes(2, "big")
                          + header[18:38] + (8 + len(message)).to_bytes(2, "big")
                          + header[40:] + message)
        return write_pcap(path, frames)

    peaks = []
    for count in (300, 300, 3000):  # the first run pays one-off import and cache costs
        path = capture(count)
        tracemalloc.start()
        valid = sum(r["signature"] == "valid" for r in analyze_capture(path, keystore_for(kek)))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert valid == count
    # Ten times the messages, (nearly) the same peak: nothing grows with the capture.
    assert peaks[2] - peaks[1] < 256 * 1024, peaks


def test_fragmented_ipv6_rekey_is_reassembled(tmp_path):
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
    kek = new_kek(signer=rsa.generate_private_key(65537, 4096))
    datagram = (IPv6(src="2001:db8::1", dst="ff05::1") / IPv6ExtHdrFragment(id=9)
                / UDP(sport=848, dport=848) / push(kek, 1))
    frames = [bytes(Ether() / frag) for frag in fragment6(datagram, 400)]
    assert len(frames) > 2
    (report,) = run(write_pcap(tmp_path / "frag6.pcap", frames[1:] + frames[:1]),
                    keystore_for(kek))
    assert report["signature"] == "valid" and report["src"] == "2001:db8::1"


def test_plaintext_rfc3547_pull_reports_its_teks(vectors_dir):
    # tests/vectors/README: the loopback PULL hands out ESP TEKs 0x1122aabb and 0x3344ccdd
    # in the RFC 3547 SA TEK encoding (1-octet ID Data Length).
    reports = run(vectors_dir / "gdoid-loopback-ks-plaintext-DERIVED.pcap")
    with_teks = [r for r in reports if r["teks"]]
    assert len(with_teks) == 1 and with_teks[0]["kind"] == "pull"
    assert [t["spi"] for t in with_teks[0]["teks"]] == ["1122aabb", "3344ccdd"]
    assert all(r["error"] is None for r in reports)


# -- what unauthenticated messages may teach (review findings) ---------------------------

def _analyzer(store):
    from scapy_gdoi.analyze import Analyzer
    return Analyzer(store)


def _datagram(frame, payload):
    from scapy_gdoi.capture import Datagram
    return Datagram(frame, 0, KS, GROUP, 848, 848, payload)


def test_plaintext_push_teaches_nothing_and_keys_file_keks_stay(p256):
    from scapy_gdoi.forge import build_push
    kek = new_kek(signer=p256)
    store = KeyStore.from_dict({"keks": [{"spi": kek.spi.hex(), "algorithm": "aes",
                                          "key": kek.key.hex(), "iv": kek.iv.hex()}]})
    analyzer = _analyzer(store)
    attacker = KEKContext(kek.spi, "aes", b"\x11" * 16, b"\x22" * 16,
                          private_key=ec.generate_private_key(ec.SECP256R1()))
    injected = attacker.sign_bytes(build_push(PushPolicy(
        attacker, 0xFFFFFFF0, teks=[TEKPolicy(1)], send_kek_policy=True)))
    report = analyzer.analyze(_datagram(1, injected))
    assert report["learned_keks"] is None and report["seq_status"] == "first"
    assert "without the E flag" in report["error"]
    assert store.kek(kek.spi).key == kek.key
    # The genuine rekey still decrypts, and its SEQ 1 is not a "replay" of 0xFFFFFFF0
    # (no signing key: unverified, so it does not move the baseline either).
    report = analyzer.analyze(_datagram(2, push(kek, 1)))
    assert report["decrypted"] and report["seq_status"] == "first"
    assert kek.spi not in analyzer.seqs.last


def test_validly_signed_plaintext_push_teaches_nothing(p256):
    from scapy_gdoi.forge import build_push
    kek = new_kek(signer=p256)
    successor = new_kek(signer=p256)
    analyzer = _analyzer(keystore_for(kek))
    plain = kek.sign_bytes(build_push(PushPolicy(kek, 5, new_kek=successor,
                                                 teks=[TEKPolicy(1)])))
    report = analyzer.analyze(_datagram(1, plain))
    assert report["signature"] == "valid" and "without the E flag" in report["error"]
    assert report["learned_keks"] is None and analyzer.keys.kek(successor.spi) is None
    assert kek.spi not in analyzer.seqs.last


def test_unverified_rekey_neither_teaches_keys_nor_moves_the_seq(p256):
    kek = new_kek(signer=p256)
    successor = new_kek(signer=p256)
    store = KeyStore()
    store.add_kek(KEKContext(kek.spi, "aes", kek.key, kek.iv))  # no signing key
    analyzer = _analyzer(store)
    report = analyzer.analyze(_datagram(1, push(kek, 9, new_kek=successor)))
    assert report["decrypted"] and report["signature"] == "unverified"
    assert report["learned_keks"] is None and store.kek(successor.spi) is None
    assert report["seq_status"] == "first" and kek.spi not in analyzer.seqs.last
    # Once valid rekeys come (signing key known), they teach and track.
    store.add_signing_key(kek.spi, p256.public_key())
    report = analyzer.analyze(_datagram(2, push(kek, 10, new_kek=successor)))
    assert report["signature"] == "valid" and report["learned_keks"] == [successor.spi.hex()]
    assert analyzer.seqs.last[kek.spi] == 10


def _plaintext_pull(kek, seq):
    """A plaintext PULL-like message carrying the SA KEK and KD of `kek`."""
    from scapy_gdoi.forge import build_push
    plain = bytearray(bytes(build_push(PushPolicy(kek, seq, send_kek_policy=True,
                                                  teks=[TEKPolicy(1)]))))
    plain[wire.EXCH_TYPE_OFFSET] = C.EXCH_GROUPKEY_PULL
    return bytes(plain)


def test_plaintext_pull_adds_new_keks_but_never_replaces_known_ones(p256):
    kek = new_kek(signer=p256)
    store = keystore_for(kek)
    analyzer = _analyzer(store)
    impostor = KEKContext(kek.spi, "aes", os.urandom(16), os.urandom(16), private_key=p256)
    report = analyzer.analyze(_datagram(1, _plaintext_pull(impostor, 0)))
    assert report["kind"] == "pull" and report["learned_keks"] is None
    assert store.kek(kek.spi).key == kek.key
    # A learnt (not keys-file) KEK is not replaced by a plaintext PULL either.
    successor = new_kek(signer=p256)
    analyzer.analyze(_datagram(2, push(kek, 1, new_kek=successor)))
    assert store.kek(successor.spi).key == successor.key
    rival = KEKContext(successor.spi, "aes", os.urandom(16), os.urandom(16), private_key=p256)
    assert analyzer.analyze(_datagram(3, _plaintext_pull(rival, 0)))["learned_keks"] is None
    assert store.kek(successor.spi).key == successor.key
    # An SPI nobody knows yet is filled in.
    fresh = new_kek(signer=p256)
    assert analyzer.analyze(_datagram(4, _plaintext_pull(fresh, 0)))["learned_keks"] == [
        fresh.spi.hex()]


def test_keystore_never_replaces_a_keys_file_kek(p256):
    from scapy_gdoi.summary import KEKKeyInfo, KEKPolicyInfo, MessageSummary
    kek = new_kek(signer=p256)
    store = KeyStore.from_dict({"keks": [{"spi": kek.spi.hex(), "algorithm": "aes",
                                          "key": kek.key.hex(), "iv": kek.iv.hex(),
                                          "ack": "sha384"}]})
    summary = MessageSummary()
    summary.keks = [KEKPolicyInfo(kek.spi, algorithm=C.KEK_ALG_AES, key_bits=128,
                                  sig_hash=C.SIG_HASH_SHA256, ack_requested=C.KEK_ACK_SHA256)]
    summary.kek_keys = [KEKKeyInfo(kek.spi, algorithm_key=bytes(32))]
    assert store.learn(summary, via_spi=kek.spi) == []
    context = store.kek(kek.spi)
    assert (context.key, context.iv) == (kek.key, kek.iv)
    assert context.ack_method == C.KEK_ACK_SHA384  # set by the file: kept
    assert context.sig_hash == C.SIG_HASH_SHA256  # left out by the file: filled in
    learnt = KEKContext(kek.spi, "aes", bytes(16), bytes(16))
    assert store.add_kek(learnt, pinned=False) is context


def test_sig_key_length_must_match_the_verification_key(p256):
    from scapy_gdoi.forge import build_push
    kek = new_kek(signer=p256)
    plain = bytes(build_push(PushPolicy(kek, 1, send_kek_policy=True, teks=[TEKPolicy(1)])))
    stated = (0x8000 | C.KEK_ATTR_SIG_KEY_LENGTH).to_bytes(2, "big")
    assert plain.count(stated + (256).to_bytes(2, "big")) == 1
    lying = plain.replace(stated + (256).to_bytes(2, "big"), stated + (2048).to_bytes(2, "big"))
    analyzer = _analyzer(keystore_for(kek))
    report = analyzer.analyze(_datagram(1, kek.seal_bytes(lying)))
    assert report["decrypted"] and report["signature"] == "invalid"
    assert "SIG_KEY_LENGTH 2048 does not match the 256-bit verification key" in report["error"]
    assert report["learned_keks"] is None
    assert analyzer.analyze(_datagram(2, kek.seal_bytes(plain)))["signature"] == "valid"


def test_memory_stays_flat_across_many_spis(p256):
    # Review finding: per-SPI tables grew without bound. Plaintext PULLs for new SPIs
    # fill the key store and SEQ baselines, PUSHes under unknown random cookies the
    # rekey table, ACKs from random members the duplicate-ACK table.
    import struct
    import tracemalloc
    from scapy_gdoi import analyze as analyze_module
    from scapy_gdoi import keys as keys_module
    analyzer = _analyzer(KeyStore())
    template = _plaintext_pull(new_kek(signer=p256), 0)
    plain_push = bytearray(template)
    plain_push[wire.EXCH_TYPE_OFFSET] = C.EXCH_GROUPKEY_PUSH  # plaintext: remembered without a KEK
    plain_push = bytes(plain_push)
    ack_template = bytes(ack.build_ack_for(bytes(16), 0, "2001:db8::1", bytes(16),
                                           C.KEK_ACK_SHA256))

    def feed(start, keks, rekeys, acks):
        for n in range(start, start + keks):
            spi = struct.pack("!QQ", 1, n)
            analyzer.analyze(_datagram(n, template.replace(template[:16], spi)))
        for n in range(start, start + rekeys):
            analyzer.analyze(_datagram(n, struct.pack("!QQ", 3, n) + plain_push[16:]))
        analyzer.analyze(_datagram(start, bytes(16) + plain_push[16:]))  # ACKs' rekey
        for n in range(start, start + acks):
            analyzer.analyze(_datagram(n, ack_template[:-16] + struct.pack("!QQ", 2, n)))

    keks = max(keys_module.MAX_LEARNED_KEKS, analyze_module.MAX_TRACKED_KEKS) + 100
    rekeys = analyze_module.MAX_KEKS_REMEMBERED_FOR_ACKS + 100
    acks = analyze_module.MAX_REMEMBERED_ACKS + 100
    tracemalloc.start()  # before the first pass: what it frees later is counted too
    feed(0, keks, rekeys, acks)  # every table at its cap
    assert len(analyzer.keys.keks) == keys_module.MAX_LEARNED_KEKS
    assert len(analyzer.keys.policies) == keys_module.MAX_LEARNED_KEKS
    assert len(analyzer.seqs.last) == analyze_module.MAX_TRACKED_KEKS
    assert len(analyzer.rekeys) == analyze_module.MAX_KEKS_REMEMBERED_FOR_ACKS
    assert len(analyzer.acked) == analyze_module.MAX_REMEMBERED_ACKS
    held = []
    for start in (10 ** 6, 2 * 10 ** 6):  # as many again, all new, twice
        feed(start, keks, rekeys, acks)
        held.append(tracemalloc.get_traced_memory())
    tracemalloc.stop()
    # A full pass of new SPIs leaves nothing more behind than the previous one (dict
    # tables breathe as entries are replaced, so compare what stays after each pass),
    # and all tables at their caps stay small.
    assert held[1][0] - held[0][0] < 256 * 1024, held
    assert max(peak for _, peak in held) < 16 * 1024 * 1024, held


def test_key_packet_values_in_the_wrong_attribute_format_teach_nothing():
    # The summaries keep wire forms (TV -> int, TLV -> bytes, as the layers do); a TV
    # KEK_ALGORITHM_KEY or a TLV KEK_ALGORITHM is no key and must not become one.
    from scapy_gdoi.summary import KEKKeyInfo, KEKPolicyInfo, MessageSummary
    spi = os.urandom(16)
    summary = MessageSummary()
    summary.keks = [KEKPolicyInfo(spi, algorithm=C.KEK_ALG_AES, key_bits=128)]
    summary.kek_keys = [KEKKeyInfo(spi, algorithm_key=0x1234, signature_key=7)]
    store = KeyStore()
    assert store.learn(summary) == [] and store.kek(spi) is None
    assert store.signing_key(spi) is None
    summary.keks = [KEKPolicyInfo(spi, algorithm=b"\x03", key_bits=128)]
    summary.kek_keys = [KEKKeyInfo(spi, algorithm_key=bytes(32))]
    assert store.learn(summary) == [] and store.kek(spi) is None


def test_plaintext_pull_cannot_give_a_keys_file_kek_a_signing_key(p256):
    # A member's keys file may hold the KEK without the signing key; an unauthenticated
    # PULL naming its own SIG_ALGORITHM_KEY must not decide what "valid" means.
    kek = new_kek(signer=p256)
    store = KeyStore.from_dict({"keks": [{"spi": kek.spi.hex(), "algorithm": "aes",
                                          "key": kek.key.hex(), "iv": kek.iv.hex()}]})
    forger = KEKContext(kek.spi, "aes", kek.key, kek.iv,
                        private_key=ec.generate_private_key(ec.SECP256R1()))
    analyzer = _analyzer(store)
    analyzer.analyze(_datagram(1, _plaintext_pull(forger, 0)))
    assert store.kek(kek.spi).public_key is None
    report = analyzer.analyze(_datagram(2, push(forger, 1)))
    assert report["signature"] == "unverified"
