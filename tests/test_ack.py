"""RFC 8263 ACKs (build, parse, verify, pairing) and the Cisco rekey ACK, then the key
server's bookkeeping through the policy module's MemberTable."""
import os

import pytest

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from scapy_gdoi import _consts as C  # noqa: E402
from scapy_gdoi import ack, crypto, wire  # noqa: E402
from scapy_gdoi.forge import PushPolicy, TEKPolicy, forge_push  # noqa: E402
from scapy_gdoi.gdoi import GDOI, GDOI_HASH, GDOI_ID, GDOI_SEQ  # noqa: E402
from scapy_gdoi.rekey import KEKContext  # noqa: E402

policy = pytest.importorskip("scapy_gdoi.policy")

MEMBER = "10.0.0.5"


@pytest.fixture(scope="module")
def signer():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def kek(signer):
    return KEKContext(os.urandom(16), "aes", os.urandom(16), os.urandom(16),
                      private_key=signer, ack_method=C.KEK_ACK_SHA256)


def _rekey(kek, seq, ack_requested=C.KEK_ACK_SHA256):
    return bytes(forge_push(PushPolicy(kek, seq, teks=[TEKPolicy(0x100 + seq)],
                                       ack_requested=ack_requested)))


def _member_view(kek):
    """What a member holds: the KEK keys, no signing key."""
    return KEKContext(kek.spi, "aes", kek.key, kek.iv, ack_method=kek.ack_method)


# -- RFC 8263 ACK ------------------------------------------------------------------------

def test_built_ack_has_the_decisions_layout(kek):
    rekey = _rekey(kek, 9)
    packet = ack.build_ack(rekey, MEMBER, _member_view(kek))
    raw = bytes(packet)
    header = wire.Header(raw)
    assert header.spi == kek.spi
    assert (header.exch_type, header.flags, header.id) == (C.EXCH_GROUPKEY_PUSH_ACK, 0, 0)
    assert header.next_payload == C.PT_HASH and header.length == len(raw)
    assert [t for t, _, _ in wire.iter_payloads(header.next_payload, raw[28:])] == [
        C.PT_HASH, C.PT_SEQ, C.PT_ID]
    assert packet[GDOI_SEQ].seq == 9
    assert packet[GDOI_ID].id_type == C.ID_IPV4_ADDR
    assert len(packet[GDOI_HASH].hash) == 32
    # The HASH is the DECISIONS.md §2 recipe over the SEQ and ID payloads as sent.
    info = ack.parse_ack(raw)
    assert info.hash == crypto.ack_hash(kek.key, kek.spi, "sha256", raw[64:72], raw[72:])
    assert (info.seq, info.member) == (9, MEMBER)


def test_forged_ack_verifies_and_matches_its_rekey(kek):
    rekey = _rekey(kek, 4)
    packet = ack.build_ack(rekey, MEMBER, _member_view(kek))
    assert ack.verify_ack(bytes(packet), kek)
    assert ack.check_ack(ack.parse_ack(bytes(packet)), kek) == "valid"
    assert ack.ack_matches(bytes(packet), kek.spi, 4)
    assert not ack.ack_matches(bytes(packet), kek.spi, 5)
    assert not ack.ack_matches(bytes(packet), os.urandom(16), 4)
    # Scapy pairing: the layer's answers() agrees with the plaintext rekey.
    assert packet.answers(kek.decrypt(rekey))


@pytest.mark.parametrize("method, size", [(C.KEK_ACK_SHA256, 32), (C.KEK_ACK_SHA384, 48),
                                          (C.KEK_ACK_SHA512, 64)])
def test_every_ack_method_round_trips(kek, method, size):
    rekey = _rekey(kek, 2, ack_requested=method)
    packet = ack.build_ack(rekey, "2001:db8::7", _member_view(kek), method=method)
    assert len(packet[GDOI_HASH].hash) == size
    assert packet[GDOI_ID].id_type == C.ID_IPV6_ADDR
    assert ack.parse_ack(bytes(packet)).member == "2001:db8::7"
    assert ack.verify_ack(bytes(packet), kek, method)
    # Without the method, the HASH length names it.
    bare = KEKContext(kek.spi, "aes", kek.key, kek.iv)
    assert ack.verify_ack(bytes(packet), bare)


def test_build_ack_uses_the_method_the_rekey_requests(kek):
    """A member's KEK context need not know the ACK method: the decrypted rekey's SA
    KEK carries KEK_ACK_REQUESTED (RFC 8263), and that is what the server expects."""
    bare = KEKContext(kek.spi, "aes", kek.key, kek.iv)
    packet = ack.build_ack(_rekey(kek, 6, ack_requested=C.KEK_ACK_SHA384), MEMBER, bare)
    assert len(packet[GDOI_HASH].hash) == 48
    assert ack.verify_ack(bytes(packet), bare, C.KEK_ACK_SHA384)
    assert not ack.verify_ack(bytes(packet), bare, C.KEK_ACK_SHA256)
    # The rekey's request wins over the context's default too.
    packet = ack.build_ack(_rekey(kek, 6, ack_requested=C.KEK_ACK_SHA512), MEMBER,
                           _member_view(kek))
    assert len(packet[GDOI_HASH].hash) == 64


def test_build_ack_refuses_a_method_the_rekey_did_not_request(kek):
    rekey = _rekey(kek, 6, ack_requested=C.KEK_ACK_SHA256)
    with pytest.raises(crypto.GDOICryptoError, match="SHA-384 was given, but the rekey "
                       "requested SHA-256"):
        ack.build_ack(rekey, MEMBER, _member_view(kek), method="sha384")
    # Naming the requested method in another spelling is fine.
    packet = ack.build_ack(rekey, MEMBER, _member_view(kek), method="REKEY_ACK_KEK_SHA256")
    assert len(packet[GDOI_HASH].hash) == 32


def test_build_ack_without_any_method_says_where_it_looked(kek):
    rekey = _rekey(kek, 6, ack_requested=None)
    bare = KEKContext(kek.spi, "aes", kek.key, kek.iv)
    with pytest.raises(crypto.GDOICryptoError, match="rekey carries no KEK_ACK_REQUESTED, "
                       "the KEKContext has no ack_method, and no method was given"):
        ack.build_ack(rekey, MEMBER, bare)
    assert len(ack.build_ack(rekey, MEMBER, bare, method=3)[GDOI_HASH].hash) == 64


def test_build_ack_for_an_unknown_requested_method_needs_an_explicit_one(kek):
    rekey = _rekey(kek, 6, ack_requested=4)  # a KEK_ACK_REQUESTED value we do not know
    with pytest.raises(crypto.GDOICryptoError, match="requests ACK method 4 .*pass method="):
        ack.build_ack(rekey, MEMBER, _member_view(kek))
    assert len(ack.build_ack(rekey, MEMBER, _member_view(kek),
                             method="sha384")[GDOI_HASH].hash) == 48


@pytest.mark.parametrize("spelling, value", [
    (1, 1), (2, 2), (3, 3), ("REKEY_ACK_KEK_SHA256", 1), ("rekey_ack_kek_sha384", 2),
    ("REKEY_ACK_KEK_SHA512", 3), ("sha256", 1), ("sha-256", 1), ("SHA256", 1),
    ("SHA-384", 2), ("sha512", 3)])
def test_ack_method_spellings_all_normalise(spelling, value):
    assert crypto.ack_method_value(spelling) == value
    assert ack.ack_method_of(spelling) == value
    assert KEKContext(os.urandom(16), "aes", bytes(16), bytes(16),
                      ack_method=spelling).ack_method == value


@pytest.mark.parametrize("bad", ["bogus", 4, 0, True, None, "sha1", "md5", b"sha256"])
def test_unknown_ack_methods_are_refused_with_the_accepted_set(bad):
    with pytest.raises(ValueError, match="unknown ACK method.*REKEY_ACK_KEK_SHA256"):
        crypto.ack_method_value(bad)
    if bad is not None:
        with pytest.raises(ValueError, match="unknown ACK method"):
            KEKContext(os.urandom(16), "aes", bytes(16), bytes(16), ack_method=bad)


def test_tampered_ack_does_not_verify(kek):
    raw = bytes(ack.build_ack(_rekey(kek, 3), MEMBER, _member_view(kek)))
    for position in (32, 60, 71, len(raw) - 1):  # HASH, SEQ value, ID data
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        assert not ack.verify_ack(bytes(tampered), kek), position
    other = KEKContext(kek.spi, "aes", os.urandom(16), kek.iv, ack_method=C.KEK_ACK_SHA256)
    assert not ack.verify_ack(raw, other)
    assert ack.check_ack(ack.parse_ack(raw), None) == "unverified"


@pytest.mark.parametrize("mutate, message", [
    (lambda raw: raw[:40], "truncated"),
    (lambda raw: wire.with_header_fields(raw, flags=1), "E flag"),
    (lambda raw: raw[:18] + bytes([C.EXCH_GROUPKEY_PUSH]) + raw[19:], "exchange type"),
])
def test_malformed_acks_are_clear_errors(kek, mutate, message):
    raw = bytes(ack.build_ack(_rekey(kek, 1), MEMBER, _member_view(kek)))
    with pytest.raises(ack.AckFormatError, match=message):
        ack.parse_ack(mutate(raw))


def test_ack_with_payloads_out_of_order_is_refused(kek):
    spi = kek.spi
    swapped = GDOI(init_cookie=spi[:8], resp_cookie=spi[8:],
                   exch_type=C.EXCH_GROUPKEY_PUSH_ACK) / GDOI_SEQ(seq=1) / GDOI_HASH(
        hash=b"x" * 32) / GDOI_ID(id_data=MEMBER)
    with pytest.raises(ack.AckFormatError, match="expected HASH, SEQ, ID"):
        ack.parse_ack(bytes(swapped))


# -- Cisco rekey ACK ----------------------------------------------------------------------

def test_cisco_ack_is_classified_and_decrypted(kek):
    packet = ack.build_cisco_ack(_member_view(kek), 6, MEMBER)
    raw = bytes(packet)
    assert ack.is_cisco_ack(raw) and not ack.is_cisco_ack(_rekey(kek, 1))
    header = wire.Header(raw)
    assert header.encrypted and header.spi == kek.spi
    assert header.exch_type == C.EXCH_CISCO_REKEY_ACK
    plain = ack.decrypt_cisco_ack(raw, kek)
    assert plain[GDOI_SEQ].seq == 6 and plain[GDOI_ID].id_data == bytes([10, 0, 0, 5])
    with pytest.raises(crypto.GDOICryptoError, match="cannot decrypt"):
        ack.decrypt_cisco_ack(raw, KEKContext(os.urandom(16), "aes", kek.key, kek.iv))
    with pytest.raises(ack.AckFormatError):
        ack.decrypt_cisco_ack(_rekey(kek, 1), kek)


# -- Key-server bookkeeping (policy.MemberTable) --------------------------------------------

def _table(option, seqs=(1,)):
    table = policy.MemberTable(ack_option=option, rekey_transport="unicast")
    table.register(MEMBER, "non-cisco")
    for seq in seqs:
        table.rekey_sent(seq)
    return table


def test_valid_rfc8263_ack_is_recorded(kek):
    table = _table("interoperable", seqs=(1,))
    raw = bytes(ack.build_ack(_rekey(kek, 1), MEMBER, _member_view(kek)))
    result = ack.receive_ack(table, raw, kek)
    assert result.status is policy.AckStatus.RECORDED
    assert table.member(MEMBER).last_acked_seq == 1
    again = ack.receive_ack(table, raw, kek)
    assert again.status is policy.AckStatus.DUPLICATE


def test_tampered_hash_is_reported_and_not_recorded(kek):
    table = _table("interoperable")
    raw = bytearray(bytes(ack.build_ack(_rekey(kek, 1), MEMBER, _member_view(kek))))
    raw[35] ^= 0xFF
    result = ack.receive_ack(table, bytes(raw), kek)
    assert result.status is policy.AckStatus.BAD_HASH and not result.recorded
    assert table.member(MEMBER).last_acked_seq is None


def test_stale_seq_is_reported_and_not_recorded(kek):
    table = _table("interoperable", seqs=(1, 2))
    raw = bytes(ack.build_ack(_rekey(kek, 1), MEMBER, _member_view(kek)))
    result = ack.receive_ack(table, raw, kek)
    assert result.status is policy.AckStatus.STALE_SEQ and not result.recorded
    assert table.member(MEMBER).last_acked_seq is None


def test_unknown_member_is_reported(kek):
    table = _table("interoperable")
    raw = bytes(ack.build_ack(_rekey(kek, 1), "10.9.9.9", _member_view(kek)))
    result = ack.receive_ack(table, raw, kek)
    assert result.status is policy.AckStatus.UNKNOWN_MEMBER and not result.recorded


def test_wrong_ack_kind_for_the_option_is_reported(kek):
    rfc_ack = bytes(ack.build_ack(_rekey(kek, 1), MEMBER, _member_view(kek)))
    cisco_ack = bytes(ack.build_cisco_ack(_member_view(kek), 1, MEMBER))
    table = _table("cisco")
    assert ack.receive_ack(table, rfc_ack, kek).status is policy.AckStatus.WRONG_ACK_KIND
    table = _table("interoperable")
    assert ack.receive_ack(table, cisco_ack, kek).status is policy.AckStatus.WRONG_ACK_KIND
    assert table.member(MEMBER).last_acked_seq is None


def test_cisco_ack_is_recorded_with_the_cisco_option(kek):
    table = _table("cisco")
    cisco_ack = bytes(ack.build_cisco_ack(_member_view(kek), 1, MEMBER))
    assert ack.receive_ack(table, cisco_ack, kek).status is policy.AckStatus.RECORDED


def test_cisco_ack_under_another_kek_is_a_bad_hash(kek):
    table = _table("any")
    stranger = KEKContext(kek.spi, "aes", os.urandom(16), kek.iv)
    cisco_ack = bytes(ack.build_cisco_ack(stranger, 1, MEMBER))
    result = ack.receive_ack(table, cisco_ack, kek, member_id=MEMBER)
    assert result.status is policy.AckStatus.BAD_HASH and not result.recorded


def test_rekey_relabelled_as_cisco_ack_is_not_recorded(kek):
    # Review finding: the exchange byte is not protected, and a rekey decrypts cleanly
    # under the static IV, so only "exactly SEQ + ID" tells a Cisco ACK from a rekey.
    relabelled = bytearray(_rekey(kek, 1))
    relabelled[wire.EXCH_TYPE_OFFSET] = C.EXCH_CISCO_REKEY_ACK
    with pytest.raises(ack.AckFormatError, match="exactly SEQ, ID"):
        ack.open_cisco_ack(bytes(relabelled), kek)
    table = _table("cisco")
    result = ack.receive_ack(table, bytes(relabelled), kek, member_id=MEMBER)
    assert result.status is policy.AckStatus.BAD_HASH and not result.recorded
    assert result.detail == ("Cisco ACK does not decrypt with the KEK to exactly SEQ + ID; "
                             "dropped")
    assert table.member(MEMBER).last_acked_seq is None


@pytest.mark.parametrize("extra", ["none", "hash"])
def test_cisco_ack_must_be_exactly_seq_and_id(kek, extra):
    from scapy_gdoi.gdoi import GDOI
    body = GDOI_SEQ(seq=1) if extra == "none" else (
        GDOI_SEQ(seq=1) / GDOI_ID(id_type=C.ID_IPV4_ADDR, id_data=bytes(4))
        / GDOI_HASH(hash=bytes(32)))
    plain = GDOI(init_cookie=kek.spi[:8], resp_cookie=kek.spi[8:],
                 exch_type=C.EXCH_CISCO_REKEY_ACK, flags=0, id=0) / body
    message = kek.encrypt_bytes(bytes(plain))
    with pytest.raises(ack.AckFormatError, match="expected exactly SEQ, ID"):
        ack.open_cisco_ack(message, kek)
    table = _table("cisco")
    assert ack.receive_ack(table, message, kek, member_id=MEMBER).status \
        is policy.AckStatus.BAD_HASH
    good = bytes(ack.build_cisco_ack(kek, 1, MEMBER))
    assert ack.open_cisco_ack(good, kek) == (1, C.ID_IPV4_ADDR, bytes([10, 0, 0, 5]))


def test_build_ack_refuses_a_rekey_whose_signature_fails(kek):
    impostor = KEKContext(kek.spi, "aes", kek.key, kek.iv,
                          private_key=ec.generate_private_key(ec.SECP256R1()))
    forged = bytes(forge_push(PushPolicy(impostor, 2, teks=[TEKPolicy(1)])))
    with pytest.raises(crypto.GDOICryptoError, match="signature is invalid"):
        ack.build_ack(forged, MEMBER, kek)
    # A member without the signing key cannot tell, and acknowledges (documented).
    assert ack.build_ack(forged, MEMBER, _member_view(kek))[GDOI_SEQ].seq == 2


def test_build_ack_refuses_an_altered_rekey(kek):
    altered = bytearray(_rekey(kek, 2))
    altered[-1] ^= 1
    with pytest.raises(crypto.GDOICryptoError, match="cannot decrypt the rekey"):
        ack.build_ack(bytes(altered), MEMBER, _member_view(kek))


def test_build_ack_refuses_another_keks_rekey_and_non_push(kek, signer):
    other = KEKContext(os.urandom(16), "aes", os.urandom(16), os.urandom(16),
                       private_key=signer)
    with pytest.raises(crypto.GDOICryptoError, match="not the KEK SPI"):
        ack.build_ack(bytes(forge_push(PushPolicy(other, 3, teks=[TEKPolicy(1)]))),
                      MEMBER, kek)
    not_push = bytearray(_rekey(kek, 3))
    not_push[wire.EXCH_TYPE_OFFSET] = C.EXCH_GROUPKEY_PULL
    with pytest.raises(ack.AckFormatError, match="is not GROUPKEY-PUSH"):
        ack.build_ack(bytes(not_push), MEMBER, kek)


def test_missing_kek_is_a_clear_error(kek):
    raw = bytes(ack.build_ack(_rekey(kek, 1), MEMBER, _member_view(kek)))
    with pytest.raises(crypto.GDOICryptoError, match="no KEK"):
        ack.receive_ack(_table("interoperable"), raw, None)
    with pytest.raises(crypto.GDOICryptoError, match="no KEK"):
        ack.verify_ack(ack.parse_ack(raw), None)
    assert ack.check_ack(ack.parse_ack(raw), None) == ack.HASH_UNVERIFIED
    with pytest.raises(crypto.GDOICryptoError, match="no KEK"):
        ack.build_ack(_rekey(kek, 1), MEMBER, None)


def test_push_policy_for_member_uses_the_policy_tables(kek):
    table = _table("interoperable")
    config = policy.GroupConfig(name="g", role="key-server", d3p_window_ms=5000)
    push = PushPolicy.for_member(kek, 2, table, MEMBER, old_sa_remaining_s=300,
                                 group_config=config, teks=[TEKPolicy(5)])
    assert push.ack_requested == table.kek_ack_requested(MEMBER) == C.KEK_ACK_SHA256
    assert push.gap.atd == table.activation_time_delay(MEMBER, 300)
    assert (push.gap.d3p_type, push.gap.d3p_window_ms) == (C.D3P_TS_POSIX_TIME_MSEC, 5000)
    assert push.send_kek_policy


@pytest.mark.parametrize("args, message", [
    (lambda kek: (b"rekey bytes", 1, MEMBER), "kek must be a KEKContext, got bytes"),
    (lambda kek: ("10.0.0.5", kek, 1), "kek must be a KEKContext, got str"),
    (lambda kek: (kek, "1", MEMBER), "seq must be an int, got str")])
def test_build_cisco_ack_names_the_expected_types(kek, args, message):
    with pytest.raises(TypeError, match=message):
        ack.build_cisco_ack(*args(kek))
