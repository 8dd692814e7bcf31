"""KEKContext (decrypt / encrypt / sign / verify) against the real gdoid rekeys, and
forge_push round trips for every KEK cipher and signature algorithm."""
import os

import pytest

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.utils import PcapReader  # noqa: E402

from scapy_gdoi import _consts as C  # noqa: E402
from scapy_gdoi import crypto, wire  # noqa: E402
from scapy_gdoi.forge import GAPPolicy, PushPolicy, TEKPolicy, build_push, forge_push  # noqa: E402
from scapy_gdoi.gdoi import GDOI, GDOI_KD, GDOI_SAK, GDOI_SEQ, GDOI_SIG  # noqa: E402
from scapy_gdoi.keys import KeyStore  # noqa: E402
from scapy_gdoi.rekey import KEKContext, plaintext_problem  # noqa: E402
from scapy_gdoi.summary import summarize  # noqa: E402


def _udp_payloads(path):
    with PcapReader(str(path)) as reader:
        return [bytes(pkt[UDP].payload) for pkt in reader]


@pytest.fixture(scope="module")
def gdoid_kek(vectors_dir):
    store = KeyStore.from_file(vectors_dir / "keys.json")
    (context,) = store.pinned_keks.values()
    return context


@pytest.fixture(scope="module")
def gdoid_frames(vectors_dir):
    return _udp_payloads(vectors_dir / "gdoid-3clients-ks.pcap")


def test_gdoid_rekeys_decrypt_to_the_derived_plaintext_frames(gdoid_kek, gdoid_frames,
                                                              vectors_dir):
    # The DERIVED pcap holds the logged plaintext with E cleared: exactly what
    # decrypt must return (header Length as sent, padding kept).
    derived = _udp_payloads(vectors_dir / "gdoid-3clients-ks-plaintext-DERIVED.pcap")
    for frame in (31, 32):
        plain = gdoid_kek.decrypt_bytes(gdoid_frames[frame - 1])
        assert plain == derived[frame - 1]
        assert plaintext_problem(plain) is None


def test_gdoid_rekeys_dissect_and_verify(gdoid_kek, gdoid_frames):
    for frame, seq in ((31, 1), (32, 2)):
        encrypted = GDOI(gdoid_frames[frame - 1])
        assert encrypted.encrypted and encrypted.spi == b"abcdefgh01234567"
        plain, status = gdoid_kek.open(encrypted)
        assert isinstance(plain, GDOI) and not plain.encrypted
        assert plain[GDOI_SEQ].seq == seq
        assert plain.haslayer(GDOI_KD) and plain.haslayer(GDOI_SIG)
        assert status == "valid"
        # The keys file names no hash: the verifier finds SHA-1 (the SA KEK's
        # SIG_HASH_ALGORITHM in the PULL), over the unpadded header length.
        assert gdoid_kek.signature_hash(bytes(plain)) == C.SIG_HASH_SHA1
        summary = summarize(plain)
        assert summary.seq == seq
        assert [t["transform"] for t in summary.teks] == ["ESP_3DES", "ESP_3DES"]


def test_gdoid_signature_only_verifies_over_the_right_bytes(gdoid_kek, gdoid_frames):
    plain = bytearray(gdoid_kek.decrypt_bytes(gdoid_frames[30]))
    plain[40] ^= 0x01  # inside the SA payload, which is signed
    assert gdoid_kek.check_signature(bytes(plain)) == "invalid"
    wrong_key = KEKContext(gdoid_kek.spi, "3des", gdoid_kek.key, gdoid_kek.iv, sig_hash=None,
                           public_key=rsa.generate_private_key(65537, 1024).public_key())
    assert wrong_key.check_signature(gdoid_kek.decrypt_bytes(gdoid_frames[30])) == "invalid"


def test_no_public_key_is_unverified_not_invalid(gdoid_kek, gdoid_frames):
    bare = KEKContext(gdoid_kek.spi, "3des", gdoid_kek.key, gdoid_kek.iv)
    assert bare.check_signature(bare.decrypt_bytes(gdoid_frames[30])) == "unverified"


def test_wrong_kek_is_caught_by_the_plaintext_check(gdoid_kek, gdoid_frames):
    wrong = KEKContext(gdoid_kek.spi, "3des", bytes(24 * [0x42]), gdoid_kek.iv)
    assert plaintext_problem(wrong.decrypt_bytes(gdoid_frames[30])) is not None


def test_decrypt_refuses_bad_messages(gdoid_kek, gdoid_frames):
    with pytest.raises(crypto.GDOICryptoError, match="E flag"):
        gdoid_kek.decrypt_bytes(gdoid_kek.decrypt_bytes(gdoid_frames[30]))
    with pytest.raises(wire.WireError, match="truncated"):
        gdoid_kek.decrypt_bytes(gdoid_frames[30][:100])
    with pytest.raises(wire.WireError, match="truncated"):
        gdoid_kek.decrypt_bytes(gdoid_frames[30][:20])
    odd = wire.with_header_fields(gdoid_frames[30], length=len(gdoid_frames[30]) - 3)
    with pytest.raises(crypto.GDOICryptoError, match="cannot decrypt"):
        gdoid_kek.decrypt_bytes(odd)


# -- forge → bytes → open round trips ----------------------------------------------------

KEKS = [("des", 8), ("3des", 24), ("aes", 16), ("aes", 24), ("aes", 32)]


def _signer(kind):
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    return ec.generate_private_key({"p256": ec.SECP256R1(), "p384": ec.SECP384R1(),
                                    "p521": ec.SECP521R1()}[kind])


SIGNER_KINDS = ("rsa", "p256", "p384", "p521")


@pytest.fixture(scope="module")
def signers():
    return {kind: _signer(kind) for kind in SIGNER_KINDS}


def _kek(name, key_len, signer, **kwargs):
    block = crypto.kek_cipher(name).block_size
    return KEKContext(os.urandom(16), name, os.urandom(key_len), os.urandom(block),
                      private_key=signer, **kwargs)


def _policy(kek, seq=7):
    return PushPolicy(kek, seq, teks=[TEKPolicy(0x1000 + seq), TEKPolicy(
        0x2000 + seq, transform="ESP_3DES", key_bits=None, auth="HMAC-SHA")],
        gap=GAPPolicy(atd=30, dtd=60, d3p_type=C.D3P_TS_POSIX_TIME_MSEC,
                      d3p_window_ms=100000),
        ack_requested=C.KEK_ACK_SHA256, server="10.0.0.1", group="239.1.1.1")


@pytest.mark.parametrize("name, key_len", KEKS)
@pytest.mark.parametrize("signer_kind", SIGNER_KINDS)
def test_forge_open_round_trip(name, key_len, signer_kind, signers):
    signer = signers[signer_kind]
    kek = _kek(name, key_len, signer)
    wire_bytes = bytes(forge_push(_policy(kek)))
    header = wire.Header(wire_bytes)
    assert header.encrypted and header.spi == kek.spi
    assert header.exch_type == C.EXCH_GROUPKEY_PUSH and header.id == 0
    assert header.length == len(wire_bytes)
    assert (len(wire_bytes) - 28) % kek.cipher.block_size == 0
    # A receiver knowing only the KEK and the public key (as DER, like SIG_ALGORITHM_KEY).
    receiver = KEKContext(kek.spi, name, kek.key, kek.iv, sig_hash=None,
                          public_key=crypto.public_key_der(signer.public_key()))
    plain, status = receiver.open(wire_bytes)
    assert status == "valid"
    summary = summarize(plain)
    assert summary.seq == 7
    assert summary.gap == {"atd": 30, "dtd": 60, "d3p_type": 1, "d3p_window_ms": 100000}
    assert [t["spi"] for t in summary.teks] == ["%08x" % 0x1007, "%08x" % 0x2007]
    (sak,) = summary.keks
    assert (sak.spi, sak.algorithm, sak.key_bits) == (kek.spi, kek.cipher.alg_id, key_len * 8)
    assert sak.ack_requested == C.KEK_ACK_SHA256
    assert sak.sig_algorithm == crypto.signature_algorithm_of(signer)
    assert summary.kek_keys[0].algorithm_key == kek.iv + kek.key
    # Flip one bit of the signature (inside the plaintext, then re-encrypt): invalid.
    plain_bytes = kek.decrypt_bytes(wire_bytes)
    tampered = bytearray(plain_bytes)
    sig_offset = plain_bytes.rfind(bytes(plain[GDOI_SIG].sig))
    assert sig_offset > 0
    tampered[sig_offset + 5] ^= 0x10
    _, status = receiver.open(kek.encrypt_bytes(bytes(tampered)))
    assert status == "invalid"


@pytest.mark.parametrize("signer_kind", ["rsa", "p256"])
def test_flipped_ciphertext_bit_is_invalid_never_an_exception(signer_kind, signers):
    kek = _kek("aes", 16, signers[signer_kind])
    wire_bytes = bytes(forge_push(_policy(kek)))
    for position in range(28, len(wire_bytes), 7):
        damaged = bytearray(wire_bytes)
        damaged[position] ^= 0x04
        plain, status = kek.open(bytes(damaged))
        assert status == "invalid", position


def test_gdoid_style_signing_round_trips(signers):
    # No DigestInfo and the unpadded length in the signed header, like gdoid.
    kek = _kek("3des", 24, signers["rsa"], digest_info=False, sign_unpadded_length=True,
               sig_hash=C.SIG_HASH_SHA1)
    wire_bytes = bytes(forge_push(_policy(kek)))
    receiver = KEKContext(kek.spi, "3des", kek.key, kek.iv, sig_hash=None,
                          public_key=signers["rsa"].public_key())
    assert receiver.open(wire_bytes)[1] == "valid"
    assert receiver.signature_hash(kek.decrypt_bytes(wire_bytes)) == C.SIG_HASH_SHA1


def test_forge_with_new_kek_hands_out_the_new_key(signers):
    kek = _kek("aes", 32, signers["p256"])
    new = _kek("aes", 16, None)
    wire_bytes = bytes(forge_push(PushPolicy(kek, 3, new_kek=new, teks=[TEKPolicy(9)])))
    summary = summarize(kek.decrypt(wire_bytes))
    assert [k.spi for k in summary.keks] == [new.spi]
    assert summary.kek_keys[0].algorithm_key == new.iv + new.key
    # The key store learns the new KEK, with the signer's key, ready for the next PUSH.
    store = KeyStore()
    store.add_kek(KEKContext(kek.spi, "aes", kek.key, kek.iv, sig_hash=None))
    assert store.learn(summary, via_spi=kek.spi) == [new.spi]
    learned = store.kek(new.spi)
    assert (learned.key, learned.iv) == (new.key, new.iv)
    assert learned.public_key.public_numbers() == signers["p256"].public_key().public_numbers()
    next_push = bytes(forge_push(PushPolicy(KEKContext(
        new.spi, "aes", new.key, new.iv, private_key=signers["p256"]), 4, teks=[TEKPolicy(10)])))
    assert learned.open(next_push)[1] == "valid"


def test_build_push_without_a_signer_or_content_is_refused(signers):
    with pytest.raises(crypto.GDOICryptoError, match="private key"):
        build_push(PushPolicy(_kek("aes", 16, None), 1, teks=[TEKPolicy(1)]))
    with pytest.raises(ValueError, match="at least"):
        build_push(PushPolicy(_kek("aes", 16, signers["p256"]), 1))


def test_sign_then_encrypt_returns_new_packets(signers):
    kek = _kek("aes", 16, signers["p256"])
    plain = build_push(_policy(kek))
    signed = kek.sign(plain)
    assert signed is not plain and plain[GDOI_SIG].sig == b""
    assert len(signed[GDOI_SIG].sig) == 64
    assert signed.length == len(bytes(signed)) and signed.length % 16 == 28 % 16
    encrypted = kek.encrypt(signed)
    assert encrypted.encrypted and encrypted is not signed
    assert not encrypted.haslayer(GDOI_SAK)  # encrypted body stays Raw
    assert kek.decrypt(encrypted)[GDOI_SAK].spi == kek.spi


@pytest.mark.parametrize("kwargs, message", [
    (dict(spi=b"short", algorithm="aes", key=b"k" * 16, iv=b"i" * 16), "16 octets"),
    (dict(spi=b"s" * 16, algorithm="aes", key=b"k" * 17, iv=b"i" * 16), "key must be"),
    (dict(spi=b"s" * 16, algorithm="3des", key=b"k" * 24, iv=b"i" * 16), "IV must be"),
    (dict(spi=b"s" * 16, algorithm="idea", key=b"k" * 16, iv=b"i" * 8), "unsupported"),
])
def test_kek_context_rejects_bad_key_material(kwargs, message):
    with pytest.raises(crypto.GDOICryptoError, match=message):
        KEKContext(**kwargs)


def test_from_algorithm_key_splits_iv_and_key():
    context = KEKContext.from_algorithm_key(b"s" * 16, C.KEK_ALG_AES, bytes(range(48)),
                                            key_len=32)
    assert context.iv == bytes(range(16)) and context.key == bytes(range(16, 48))
    assert context.algorithm_key == bytes(range(48))


def test_padding_bound_is_the_ciphers_block_size(gdoid_kek, gdoid_frames):
    # Review finding: 16 was used for DES/3DES too; their padding is under 8 octets.
    plain = gdoid_kek.decrypt_bytes(gdoid_frames[30])
    header = wire.Header(plain)
    chain_end = wire.HEADER_LEN + wire.payload_map(header.next_payload,
                                                   plain[wire.HEADER_LEN:])[1]
    trimmed = plain[:chain_end]
    assert gdoid_kek.cipher.block_size == 8  # 3DES
    assert plaintext_problem(trimmed + bytes(7), 8) is None
    assert "under one 8-octet block" in plaintext_problem(trimmed + bytes(8), 8)
    assert plaintext_problem(trimmed + bytes(8), 16) is None
    assert plaintext_problem(trimmed + bytes(8)) is None  # default: the largest block


def test_forged_atd_and_dtd_are_tv_and_clamped():
    # Review finding: ATD 86370 became a 3-octet TLV; ATD/DTD are TV-only (facts §2.4).
    kek = KEKContext(os.urandom(16), "aes", os.urandom(16), os.urandom(16),
                     private_key=ec.generate_private_key(ec.SECP256R1()))
    plain = bytes(build_push(PushPolicy(kek, 1, gap=GAPPolicy(atd=86370, dtd=70000),
                                        teks=[TEKPolicy(1)])))
    tv = 0x8000
    assert (tv | C.GAP_ATTR_ACTIVATION_TIME_DELAY).to_bytes(2, "big") + b"\xff\xff" in plain
    assert (tv | C.GAP_ATTR_DEACTIVATION_TIME_DELAY).to_bytes(2, "big") + b"\xff\xff" in plain
    assert summarize(GDOI(plain)).gap["atd"] == summarize(GDOI(plain)).gap["dtd"] == 0xFFFF
    small = bytes(build_push(PushPolicy(kek, 1, gap=GAPPolicy(atd=3570), teks=[TEKPolicy(1)])))
    assert summarize(GDOI(small)).gap["atd"] == 3570


def test_forged_ipv6_addresses_use_ipv6_id_types():
    from scapy_gdoi.gdoi import GDOI_SAT
    kek = KEKContext(os.urandom(16), "aes", os.urandom(16), os.urandom(16),
                     private_key=ec.generate_private_key(ec.SECP256R1()))
    plain = GDOI(bytes(build_push(PushPolicy(
        kek, 1, send_kek_policy=True, server="2001:db8::1", group="ff05::1",
        teks=[TEKPolicy(1, src="2001:db8:1::/48", dst="::/0")]))))
    sak, sat = plain[GDOI_SAK], plain[GDOI_SAT]
    assert (sak.src_id_type, sak.dst_id_type) == (C.ID_IPV6_ADDR, C.ID_IPV6_ADDR)
    assert (sak.src_id_len, sak.dst_id_len) == (16, 16)
    assert bytes(sak)[:200].find(bytes.fromhex("20010db8" + "00" * 11 + "01")) > 0
    assert (sat.src_id_type, sat.dst_id_type) == (C.ID_IPV6_ADDR_SUBNET,) * 2
    ipv4 = GDOI(bytes(build_push(PushPolicy(kek, 1, send_kek_policy=True,
                                            teks=[TEKPolicy(1)]))))
    assert ipv4[GDOI_SAK].src_id_type == C.ID_IPV4_ADDR
    assert ipv4[GDOI_SAT].src_id_type == C.ID_IPV4_ADDR_SUBNET


@pytest.mark.parametrize("spi", [2 ** 32, -1])
def test_tek_spi_beyond_32_bits_is_refused(spi):
    with pytest.raises(ValueError, match="SPI is 32 bits"):
        TEKPolicy(spi)
    assert TEKPolicy(2 ** 32 - 1).key_packet().spi == b"\xff" * 4


def test_unknown_tek_transform_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown ESP transform 'ESP_FOO'; valid names: "
                       ".*ESP_AES-CBC.*ESP_AES-GCM-16"):
        TEKPolicy(1, transform="ESP_FOO")
    with pytest.raises(TypeError, match="TEK SPI must be an int"):
        TEKPolicy("1")


def test_push_policy_accepts_ack_method_names_like_every_other_api(signers):
    kek = KEKContext(os.urandom(16), "aes", os.urandom(16), os.urandom(16),
                     private_key=signers["p256"])
    pushed = forge_push(PushPolicy(kek, 1, teks=[TEKPolicy(5)],
                                   ack_requested="REKEY_ACK_KEK_SHA384"))
    assert summarize(kek.decrypt(pushed)).keks[0].ack_requested == C.KEK_ACK_SHA384
    with pytest.raises(ValueError, match="unknown ACK method 'sha-1'"):
        PushPolicy(kek, 1, ack_requested="sha-1")
