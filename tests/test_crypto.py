"""Bytes-level crypto: KEK ciphers against published vectors and the real gdoid capture,
rekey signatures (RSA with/without DigestInfo, ECDSA raw/DER), the RFC 8263 ACK hash."""
import hashlib
import hmac
import json
import struct

import pytest

from scapy_gdoi import _consts as C
from scapy_gdoi import crypto, wire

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402


def _rekeys(vectors_dir):
    data = json.loads((vectors_dir / "gdoid-3clients-ks.vectors.json").read_text())
    return [m for m in data["messages"] if m["exchange_type"] == C.EXCH_GROUPKEY_PUSH]


# -- KEK ciphers: known-answer tests from the standards -------------------------------

NIST_PLAINTEXT = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")


@pytest.mark.parametrize("key, expected", [
    # NIST SP 800-38A F.2.1 / F.2.3 / F.2.5 (CBC-AES128/192/256.Encrypt, first block)
    ("2b7e151628aed2a6abf7158809cf4f3c", "7649abac8119b246cee98e9b12e9197d"),
    ("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "4f021db243bc633d7178183a9fa071e8"),
    ("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
     "f58c4c04d6e5f1ba779eabfb5f7bfbd6"),
])
def test_aes_cbc_matches_sp800_38a(key, expected):
    cipher = crypto.kek_cipher(C.KEK_ALG_AES)
    out = cipher.encrypt(bytes.fromhex(key), bytes(range(16)), NIST_PLAINTEXT)
    assert out.hex() == expected
    assert cipher.decrypt(bytes.fromhex(key), bytes(range(16)), out) == NIST_PLAINTEXT


def test_single_des_cbc_matches_fips81():
    # FIPS PUB 81 appendix C, CBC example: "Now is the time for all ".
    cipher = crypto.kek_cipher("des")
    key, iv = bytes.fromhex("0123456789abcdef"), bytes.fromhex("1234567890abcdef")
    out = cipher.encrypt(key, iv, b"Now is the time for all ")
    assert out.hex() == "e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6"
    assert cipher.decrypt(key, iv, out) == b"Now is the time for all "


def test_3des_decrypts_the_gdoid_rekeys_to_the_logged_plaintext(vectors_dir):
    rekeys = _rekeys(vectors_dir)
    assert [m["frame"] for m in rekeys] == [31, 32]
    cipher = crypto.kek_cipher(C.KEK_ALG_3DES)
    for message in rekeys:
        wire_bytes = bytes.fromhex(message["wire_hex"])
        plain = cipher.decrypt(bytes.fromhex(message["key_3des_cbc"]),
                               bytes.fromhex(message["iv"]), wire_bytes[28:])
        assert plain.hex() == message["plaintext_body_hex_from_log"]


def test_zero_padding_to_the_block_size():
    cipher = crypto.kek_cipher("aes")
    key, iv = b"k" * 16, b"i" * 16
    for size in (0, 1, 15, 16, 17):
        out = cipher.encrypt(key, iv, b"\x55" * size)
        assert len(out) % 16 == 0 and len(out) >= size
        assert cipher.decrypt(key, iv, out) == b"\x55" * size + b"\0" * (len(out) - size)


def test_ciphertext_not_whole_blocks_is_a_clear_error():
    with pytest.raises(crypto.GDOICryptoError, match="cannot decrypt"):
        crypto.kek_cipher("3des").decrypt(b"k" * 24, b"i" * 8, b"x" * 13)


@pytest.mark.parametrize("name, key_len, iv_len", [("aes", 15, 16), ("3des", 16, 8),
                                                   ("des", 8, 16)])
def test_wrong_key_or_iv_size_is_rejected(name, key_len, iv_len):
    with pytest.raises(crypto.GDOICryptoError):
        crypto.kek_cipher(name).encrypt(b"k" * key_len, b"i" * iv_len, b"data")


def test_unknown_algorithm_is_rejected():
    with pytest.raises(crypto.GDOICryptoError, match="unsupported KEK algorithm"):
        crypto.kek_cipher("rc4")
    with pytest.raises(crypto.GDOICryptoError):
        crypto.kek_cipher(99)


def test_split_kek_algorithm_key_is_iv_then_key():
    # The gdoid run's KEK_ALGORITHM_KEY: "IVIVIVIV" ‖ "ABCDEFGHIJKLMNOPQRSTUVWX".
    iv, key = crypto.kek_cipher("3des").split_algorithm_key(
        b"IVIVIVIVABCDEFGHIJKLMNOPQRSTUVWX", key_len=24)
    assert (iv, key) == (b"IVIVIVIV", b"ABCDEFGHIJKLMNOPQRSTUVWX")
    with pytest.raises(crypto.GDOICryptoError, match="KEK_KEY_LENGTH"):
        crypto.kek_cipher("3des").split_algorithm_key(b"IVIVIVIV" + b"A" * 24, key_len=16)
    with pytest.raises(crypto.GDOICryptoError):
        crypto.kek_cipher("aes").split_algorithm_key(b"x" * 20)


# -- Signatures -----------------------------------------------------------------------

def _gdoid_signed_data(message, public_key_pem):
    """Independent restatement of the gdoid recipe: "rekey" ‖ HDR(E, unpadded length)
    ‖ payloads before SIG; returns (data, signature)."""
    plain = bytes.fromhex(message["wire_hex"])[:28] + bytes.fromhex(
        message["plaintext_body_hex_from_log"])
    header = wire.Header(plain)
    chain = list(wire.iter_payloads(header.next_payload, plain[28:]))
    sig_type, sig_offset, sig_payload = chain[-1]
    assert sig_type == C.PT_SIG
    unpadded = 28 + sig_offset + len(sig_payload)
    signed_header = plain[:24] + struct.pack("!I", unpadded)
    return b"rekey" + signed_header + plain[28:28 + sig_offset], sig_payload[4:]


def test_gdoid_rsa_signatures_verify_without_digestinfo(vectors_dir):
    keys = json.loads((vectors_dir / "keys.json").read_text())
    public_key = crypto.load_public_key(keys["signing_keys"][0]["public_key_pem"])
    for message in _rekeys(vectors_dir):
        data, signature = _gdoid_signed_data(message, public_key)
        assert crypto.verify(public_key, C.SIG_HASH_SHA1, data, signature)
        assert not crypto.verify(public_key, C.SIG_HASH_SHA1, data + b"x", signature)
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        assert not crypto.verify(public_key, C.SIG_HASH_SHA1, data, flipped)
        # Same key offered as DER SPKI (the SIG_ALGORITHM_KEY form) loads the same.
        der = crypto.public_key_der(public_key)
        assert crypto.load_public_key(der).public_numbers() == public_key.public_numbers()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("digest_info", [True, False])
@pytest.mark.parametrize("hash_alg", [C.SIG_HASH_SHA1, C.SIG_HASH_SHA256, C.SIG_HASH_SHA512])
def test_rsa_sign_verify_round_trip(rsa_key, digest_info, hash_alg):
    data = b"rekey" + b"header and payloads"
    signature = crypto.sign(rsa_key, hash_alg, data, digest_info=digest_info)
    assert len(signature) == crypto.signature_length(rsa_key) == 256
    public = rsa_key.public_key()
    assert crypto.verify(public, hash_alg, data, signature)
    assert not crypto.verify(public, hash_alg, data[:-1], signature)
    for position in (0, 128, 255):
        bad = bytearray(signature)
        bad[position] ^= 0x80
        assert not crypto.verify(public, hash_alg, data, bytes(bad))
    assert not crypto.verify(public, hash_alg, data, signature[:-1])


def test_rsa_bare_digest_signature_is_pkcs1_type1_over_the_digest(rsa_key):
    # Check the legacy form by opening it with the raw public operation ourselves.
    data = b"some rekey"
    signature = crypto.sign(rsa_key, C.SIG_HASH_SHA1, data, digest_info=False)
    numbers = rsa_key.public_key().public_numbers()
    opened = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(256, "big")
    digest = hashlib.sha1(data).digest()
    assert opened == b"\x00\x01" + b"\xff" * (256 - 3 - 20) + b"\x00" + digest


@pytest.mark.parametrize("curve, sig_alg, width", [
    (ec.SECP256R1(), C.SIG_ALG_ECDSA_256, 32), (ec.SECP384R1(), C.SIG_ALG_ECDSA_384, 48),
    (ec.SECP521R1(), C.SIG_ALG_ECDSA_521, 66)])
def test_ecdsa_raw_r_s_round_trip_and_der_accepted(curve, sig_alg, width):
    key = ec.generate_private_key(curve)
    assert crypto.signature_algorithm_of(key) == sig_alg
    data = b"rekey" + b"\x01" * 100
    signature = crypto.sign(key, C.SIG_HASH_SHA256, data)
    assert len(signature) == 2 * width == crypto.signature_length(key.public_key())
    assert crypto.verify(key.public_key(), C.SIG_HASH_SHA256, data, signature)
    # The raw form is exactly r ‖ s of the DER signature the library makes.
    from cryptography.hazmat.primitives import hashes
    der = key.sign(data, ec.ECDSA(hashes.SHA256()))
    assert crypto.verify(key.public_key(), C.SIG_HASH_SHA256, data, der)
    r, s = decode_dss_signature(der)
    assert crypto.verify(key.public_key(), C.SIG_HASH_SHA256, data,
                         r.to_bytes(width, "big") + s.to_bytes(width, "big"))
    bad = bytearray(signature)
    bad[width + 3] ^= 1
    assert not crypto.verify(key.public_key(), C.SIG_HASH_SHA256, data, bytes(bad))
    assert not crypto.verify(key.public_key(), C.SIG_HASH_SHA256, data, b"\x30garbage")


def test_bad_public_key_bytes_are_a_clear_error():
    with pytest.raises(crypto.GDOICryptoError, match="not a public key"):
        crypto.load_public_key(b"\x30\x03\x02\x01\x01")


def test_pkcs1_rsa_public_key_is_accepted(rsa_key):
    from cryptography.hazmat.primitives import serialization
    pkcs1 = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.PKCS1)
    loaded = crypto.load_public_key(pkcs1)
    assert loaded.public_numbers() == rsa_key.public_key().public_numbers()


# -- RFC 8263 ACK hash (DECISIONS.md §2) ----------------------------------------------

def _decisions_recipe(kek_key, spi, name, seq, ident, block_bits):
    # Restated from DECISIONS.md §2, independently of the implementation.
    k_ack = hmac.new(kek_key, b"GROUPKEY-PUSH ACK" + spi + block_bits.to_bytes(4, "big"),
                     name).digest()
    return hmac.new(k_ack, seq + ident, name).digest()


@pytest.mark.parametrize("method, name, bits, size", [
    (C.KEK_ACK_SHA256, "sha256", 512, 32), (C.KEK_ACK_SHA384, "sha384", 1024, 48),
    (C.KEK_ACK_SHA512, "sha512", 1024, 64)])
def test_ack_hash_follows_decisions_recipe(method, name, bits, size):
    kek_key, spi = b"K" * 16, b"abcdefgh01234567"
    seq = bytes.fromhex("0900000800000007")
    ident = bytes.fromhex("000000080100000a00e025")
    expected = _decisions_recipe(kek_key, spi, name, seq, ident, bits)
    assert crypto.ack_hash(kek_key, spi, method, seq, ident) == expected
    assert crypto.ack_hash(kek_key, spi, name, seq, ident) == expected
    assert len(expected) == size
    # Each input matters.
    assert crypto.ack_hash(kek_key, spi, name, seq[:-1] + b"\x08", ident) != expected
    assert crypto.ack_hash(kek_key, spi[::-1], name, seq, ident) != expected
    assert crypto.ack_hash(b"L" * 16, spi, name, seq, ident) != expected


def test_ack_hash_rejects_bad_inputs():
    with pytest.raises(crypto.GDOICryptoError):
        crypto.ack_hash(b"k" * 16, b"short", "sha256", b"", b"")
    with pytest.raises(crypto.GDOICryptoError):
        crypto.ack_hash(b"k" * 16, b"s" * 16, 42, b"", b"")


def test_hashes_equal():
    assert crypto.hashes_equal(b"abc", b"abc")
    assert not crypto.hashes_equal(b"abc", b"abd")
    assert not crypto.hashes_equal(b"abc", b"ab")


def test_public_key_bits_is_what_sig_key_length_states():
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    assert crypto.public_key_bits(rsa.generate_private_key(65537, 1024).public_key()) == 1024
    assert crypto.public_key_bits(ec.generate_private_key(ec.SECP521R1()).public_key()) == 521
    with pytest.raises(crypto.GDOICryptoError, match="unsupported"):
        crypto.public_key_bits(object())
