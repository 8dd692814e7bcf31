"""GDOI layers: build to known bytes, dissect real bytes, survive bad bytes."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP, UDP, ISAKMP, Padding, Raw, conf, rdpcap
from scapy.layers.isakmp import ISAKMP_payload_SA

import scapy_gdoi  # noqa: F401  (registers the layers)
from scapy_gdoi import (
    GDOI, GDOI_CERT, GDOI_DELETE, GDOI_GAP, GDOI_GAP_Attr, GDOI_HASH, GDOI_ID, GDOI_IPsec_Attr,
    GDOI_KD, GDOI_KD_KEK_Attr, GDOI_KD_TEK_Attr, GDOI_KEK_Attr, GDOI_KeyPacket, GDOI_NONCE,
    GDOI_NOTIFY, GDOI_Payload, GDOI_SA, GDOI_SA_Phase1, GDOI_SAK, GDOI_SAT, GDOI_SAT_IPsec,
    GDOI_SAT_IPsec_RFC3547, GDOI_SEQ, GDOI_SIG, GDOI_VENDOR_ID, GDOI_KD_SID_Attr, attr_value,
    clear_lengths, detect_sat_encoding, find_attr, set_encoding,
)
from gdoi_vectors import DELETE_KEK, KD_KEK_TEK, SA_RFC6407_EXAMPLE, SAT_RFC3547_GDOID

PLAINTEXT_PCAPS = [
    "gdoid-3clients-ks-plaintext-DERIVED.pcap",
    "gdoid-3clients-gm1-plaintext-DERIVED.pcap",
    "gdoid-loopback-ks-plaintext-DERIVED.pcap",
    "gdoid-loopback-gm-plaintext-DERIVED.pcap",
]


@pytest.fixture(autouse=True)
def strict_dissection():
    """Make any exception inside dissection visible instead of turning it into Raw."""
    old = conf.debug_dissector
    conf.debug_dissector = 1
    yield
    conf.debug_dissector = old
    set_encoding(None)


def gdoi_messages(vectors_dir, name):
    return [bytes(p[UDP].payload) for p in rdpcap(str(vectors_dir / name))]


def iter_gdoi_payloads(pkt):
    """Every payload of a message, the SA's sub-payload chain included."""
    for layer in pkt.iterpayloads():
        yield layer
        if isinstance(layer, GDOI_SA):
            yield from iter_gdoi_payloads(layer.payloads) if layer.payloads is not None else ()


# -- Build: every layer to the expected bytes --------------------------------------------

def build_rfc6407_example_sa():
    return GDOI_SA(payloads=(
        GDOI_SAK(protocol=17, src_id_port=848, src_id="10.0.0.1", dst_id_port=848,
                 dst_id="239.1.1.1", spi=bytes(range(0x10, 0x20)), attrs=[
                     GDOI_KEK_Attr(type="KEK_ALGORITHM", value="KEK_ALG_AES"),
                     GDOI_KEK_Attr(type="KEK_KEY_LENGTH", value=128),
                     GDOI_KEK_Attr(type="KEK_KEY_LIFETIME", value=86400),
                     GDOI_KEK_Attr(type="SIG_HASH_ALGORITHM", value="SHA256"),
                     GDOI_KEK_Attr(type="SIG_ALGORITHM", value="RSA"),
                     GDOI_KEK_Attr(type="SIG_KEY_LENGTH", value=2048)])
        / GDOI_GAP(attrs=[GDOI_GAP_Attr(type="ACTIVATION_TIME_DELAY", value=10)])
        / GDOI_SAT_IPsec(src_id="10.1.0.0/16", dst_id="239.1.1.0/24", transform_id="ESP_AES-CBC",
                         spi=0x11223344, attrs=[
                             GDOI_IPsec_Attr(type="SA_LIFE_TYPE", value="seconds"),
                             GDOI_IPsec_Attr(type="SA_LIFE_DURATION", data=(3600).to_bytes(4, "big")),
                             GDOI_IPsec_Attr(type="ENCAPSULATION_MODE", value="Tunnel"),
                             GDOI_IPsec_Attr(type="AUTHENTICATION_ALGORITHM", value="HMAC-SHA"),
                             GDOI_IPsec_Attr(type="KEY_LENGTH", value=128)])))


def test_sa_block_builds_to_the_rfc6407_example():
    # The SA's Next Payload is filled from what follows it (KD).
    built = bytes(build_rfc6407_example_sa() / GDOI_KD())
    assert built[:len(SA_RFC6407_EXAMPLE)] == SA_RFC6407_EXAMPLE


def test_sat_builds_in_the_rfc3547_form():
    sat = GDOI_SAT_IPsec_RFC3547(
        src_id_type="ID_IPV4_ADDR", src_id="10.0.224.37", dst_id_type="ID_IPV4_ADDR",
        dst_id="239.1.1.1", transform_id="ESP_3DES", spi=0x2E22FBB7, attrs=[
            GDOI_IPsec_Attr(type="ENCAPSULATION_MODE", value="Transport"),
            GDOI_IPsec_Attr(type="AUTHENTICATION_ALGORITHM", value="HMAC-SHA"),
            GDOI_IPsec_Attr(type="SA_LIFE_TYPE", value="seconds"),
            GDOI_IPsec_Attr(type="SA_LIFE_DURATION", af=1, value=60)])
    assert bytes(sat / GDOI_SAT_IPsec_RFC3547())[:len(SAT_RFC3547_GDOID)] == SAT_RFC3547_GDOID


def test_key_download_builds():
    kd = GDOI_KD(key_packets=[
        GDOI_KeyPacket(kd_type="KEK", spi=b"abcdefgh01234567", attrs=[
            GDOI_KD_KEK_Attr(type="KEK_ALGORITHM_KEY",
                             value=b"IVIVIVIV" + b"ABCDEFGHIJKLMNOPQRSTUVWX")]),
        GDOI_KeyPacket(kd_type="TEK", spi=bytes.fromhex("1122aabb"), attrs=[
            GDOI_KD_TEK_Attr(type="TEK_ALGORITHM_KEY", value=b"abcdef")])])
    assert bytes(kd) == KD_KEK_TEK


def test_delete_with_a_16_octet_kek_spi_builds():
    assert bytes(GDOI_DELETE(spis=[b"abcdefgh01234567"])) == DELETE_KEK


def test_simple_payloads_build():
    assert bytes(GDOI_SEQ(seq=7)) == bytes.fromhex("0000000800000007")
    assert bytes(GDOI_HASH(hash=b"\xaa" * 4)) == bytes.fromhex("00000008aaaaaaaa")
    assert bytes(GDOI_SIG(sig=b"\x01\x02")) == bytes.fromhex("000000060102")
    assert bytes(GDOI_NONCE(nonce=b"n" * 2)) == bytes.fromhex("000000066e6e")
    assert bytes(GDOI_VENDOR_ID(vendor_id=b"v")) == bytes.fromhex("0000000576")
    assert bytes(GDOI_CERT(cert_data=b"c")) == bytes.fromhex("000000060463")
    # ID (RFC 2407 §4.6.2): type IPV4_ADDR, protocol, port, address
    assert bytes(GDOI_ID(id_data="10.0.0.5")) == bytes.fromhex("0000000c010000000a000005")
    # ID_KEY_ID group number as in GROUPKEY-PULL message 1 (gdoid uses a 4-octet integer)
    assert bytes(GDOI_ID(id_type="ID_KEY_ID", id_data=1234)) == bytes.fromhex(
        "0000000c0b000000000004d2")
    assert bytes(GDOI_NOTIFY(notify_type=23)) == bytes.fromhex("0000000c0000000201000017")
    assert bytes(GDOI_GAP(attrs=[GDOI_GAP_Attr(type="D3P_TYPE", value="POSIX-TIME-MSEC"),
                                 GDOI_GAP_Attr(type="D3P_WINDOW_SIZE", value=100000)])) == \
        bytes.fromhex("00000010" "80040001" "0005000400 0186a0".replace(" ", ""))


def test_header_builds_and_chains_next_payloads():
    msg = (GDOI(init_cookie=b"abcdefgh", resp_cookie=b"01234567", exch_type="GROUPKEY-PUSH")
           / GDOI_SEQ(seq=1) / GDOI_SIG(sig=b"x"))
    raw = bytes(msg)
    assert raw[:16] == b"abcdefgh01234567"
    assert raw[16] == 18 and raw[17] == 0x10 and raw[18] == 33 and raw[19] == 0
    assert int.from_bytes(raw[24:28], "big") == len(raw) == 28 + 8 + 5
    assert raw[28] == 9  # SEQ's Next Payload names SIG
    assert raw[36] == 0


def test_forced_wrong_lengths_are_kept():
    assert bytes(GDOI_SEQ(seq=1, length=99))[2:4] == b"\x00\x63"
    assert bytes(GDOI(length=5))[24:28] == b"\x00\x00\x00\x05"
    assert bytes(GDOI_SA(length=3, sa_next_payload=22))[2:4] == b"\x00\x03"
    assert bytes(GDOI_KEK_Attr(type=4, data=b"\x00\x01", length=9))[2:4] == b"\x00\x09"
    assert bytes(GDOI_SAK(src_id_len=9))[8] == 9


def test_attribute_encoding_rules():
    # TV when the value fits 16 bits, TLV for bytes, large numbers and mandated TLVs.
    assert bytes(GDOI_KEK_Attr(type="KEK_ALGORITHM", value=3)) == bytes.fromhex("80020003")
    assert bytes(GDOI_KEK_Attr(type="KEK_KEY_LIFETIME", value=60)) == bytes.fromhex("000400040000003c")
    assert bytes(GDOI_IPsec_Attr(type="SA_LIFE_DURATION", value=86400)) == bytes.fromhex("00020003015180")
    assert bytes(GDOI_KD_TEK_Attr(type=1, value=b"\x01")) == bytes.fromhex("0001000101")
    assert GDOI_KEK_Attr(type="KEK_ACK_REQUESTED", value="REKEY_ACK_KEK_SHA256").value == 1
    with pytest.raises(ValueError):
        GDOI_KEK_Attr(type="NO_SUCH_ATTRIBUTE", value=1)
    with pytest.raises(ValueError):
        GDOI_KEK_Attr(type="KEK_ALGORITHM", value="NO_SUCH_ALGORITHM")


# -- Dissect: real and hand-checked bytes ------------------------------------------------

def test_rfc6407_example_dissects_field_by_field():
    sa = GDOI_SA(SA_RFC6407_EXAMPLE)
    assert sa.next_payload == 17 and sa.length == 154 and sa.doi == 2 and sa.sa_next_payload == 15
    sak, gap, sat = sa.sub_payloads()
    assert isinstance(sak, GDOI_SAK) and isinstance(gap, GDOI_GAP)
    assert type(sat) is GDOI_SAT_IPsec
    assert (sak.protocol, sak.src_id_port, sak.dst_id_port) == (17, 848, 848)
    assert sak.sprintf("%src_id% %dst_id%") == "10.0.0.1 239.1.1.1"
    assert sak.spi == bytes(range(0x10, 0x20))
    assert [(a.type_name, a.val) for a in sak.attrs] == [
        ("KEK_ALGORITHM", 3), ("KEK_KEY_LENGTH", 128), ("KEK_KEY_LIFETIME", 86400),
        ("SIG_HASH_ALGORITHM", 3), ("SIG_ALGORITHM", 1), ("SIG_KEY_LENGTH", 2048)]
    assert attr_value(gap.attrs, "ACTIVATION_TIME_DELAY") == 10
    assert sat.protocol_id == 1 and sat.transform_id == 12 and sat.spi == 0x11223344
    assert sat.sprintf("%src_id% %dst_id%") == "10.1.0.0/255.255.0.0 239.1.1.0/255.255.255.0"
    assert attr_value(sat.attrs, "SA_LIFE_DURATION") == 3600
    assert find_attr(sat.attrs, 4).value == 1
    assert bytes(sa) == SA_RFC6407_EXAMPLE


def test_show_uses_names(capsys):
    GDOI_SA(SA_RFC6407_EXAMPLE).show()
    out = capsys.readouterr().out
    for name in ("KEK_ALG_AES (3)", "SHA256 (3)", "KEK_KEY_LIFETIME", "86400",
                 "ACTIVATION_TIME_DELAY", "ESP_AES-CBC", "Tunnel (1)", "HMAC-SHA (2)"):
        assert name in out


def test_encoding_detection():
    assert detect_sat_encoding(SAT_RFC3547_GDOID) == "rfc3547"
    rfc6407_sat = SA_RFC6407_EXAMPLE[16 + 69 + 8:]
    assert detect_sat_encoding(rfc6407_sat) == "rfc6407"
    assert detect_sat_encoding(b"\x00\x00\x00\x08\x01\x00\xff\xff") is None
    assert type(GDOI_SAT(SAT_RFC3547_GDOID)) is GDOI_SAT_IPsec_RFC3547
    assert type(GDOI_SAT(rfc6407_sat)) is GDOI_SAT_IPsec


def test_explicit_encoding_wins_over_detection():
    set_encoding("rfc6407")
    # The RFC 3547 bytes do not fit the RFC 6407 layout: kept whole as a generic SA TEK.
    sat = GDOI_SAT(SAT_RFC3547_GDOID)
    assert type(sat) is GDOI_SAT and sat.protocol_id == 1 and len(sat.tek) == 43 - 5
    assert bytes(sat) == SAT_RFC3547_GDOID
    set_encoding("rfc3547")
    assert type(GDOI_SAT(SAT_RFC3547_GDOID)) is GDOI_SAT_IPsec_RFC3547
    with pytest.raises(ValueError):
        set_encoding("rfc9999")


def test_key_download_dissects():
    kd = GDOI_KD(KD_KEK_TEK)
    assert kd.num_packets == 2 and len(kd.key_packets) == 2
    kek, tek = kd.key_packets
    assert (kek.kd_type, kek.spi_size, kek.spi) == (2, 16, b"abcdefgh01234567")
    assert attr_value(kek.attrs, "KEK_ALGORITHM_KEY") == b"IVIVIVIVABCDEFGHIJKLMNOPQRSTUVWX"
    assert (tek.kd_type, tek.spi) == (1, bytes.fromhex("1122aabb"))
    assert attr_value(tek.attrs, "TEK_ALGORITHM_KEY") == b"abcdef"


def test_delete_dissects():
    delete = GDOI_DELETE(DELETE_KEK)
    assert (delete.doi, delete.spi_size, delete.num_spis) == (2, 16, 1)
    assert delete.spis == [b"abcdefgh01234567"]


@pytest.mark.parametrize("name", PLAINTEXT_PCAPS)
def test_reference_plaintexts_round_trip_with_nothing_left_raw(vectors_dir, name):
    for index, raw in enumerate(gdoi_messages(vectors_dir, name), 1):
        msg = GDOI(raw)
        assert bytes(msg) == raw, "frame %d" % index
        for layer in iter_gdoi_payloads(msg):
            if isinstance(layer, Padding):
                # Only the CBC padding after the last payload of a formerly
                # encrypted message: zero bytes, fewer than one 3DES block.
                assert layer.underlayer.next_payload == 0 and len(layer.load) < 8
                continue
            assert not isinstance(layer, Raw), "frame %d: %r" % (index, layer)
            assert type(layer) is not GDOI_Payload, "frame %d: generic %r" % (index, layer)


def test_reference_registration_and_rekeys_field_values(vectors_dir):
    """Field values as the reference implementation's log documents them (tests/vectors/README.md)."""
    msgs = [GDOI(raw) for raw in gdoi_messages(vectors_dir, PLAINTEXT_PCAPS[0])]
    # Frame 1: Main Mode with DOI 2 keeps the proposal layout.
    assert msgs[0].exch_type == 2 and isinstance(msgs[0][GDOI_SA_Phase1], GDOI_SA_Phase1)
    assert msgs[0][GDOI_SA_Phase1].doi == 2
    assert msgs[0][GDOI_SA_Phase1].prop.proto == 1
    # Frame 7: PULL message 1 names the group by KEY_ID 1234.
    pull1 = msgs[6]
    assert pull1.exch_type == 32 and pull1.id == 0x3CC1F923
    assert pull1[GDOI_ID].id_type == 11 and pull1[GDOI_ID].id_data == (1234).to_bytes(4, "big")
    # Frame 8: PULL message 2 carries SA KEK + 2 SA TEKs.
    sa = msgs[7][GDOI_SA]
    sak, *teks = sa.sub_payloads()
    assert sak.spi == b"abcdefgh01234567"
    assert sak.sprintf("%src_id%:%src_id_port% %dst_id%:%dst_id_port%") == \
        "10.0.224.44:848 239.10.1.1:848"
    assert attr_value(sak.attrs, "KEK_ALGORITHM") == 2  # 3DES
    assert attr_value(sak.attrs, "SIG_HASH_ALGORITHM") == 2  # SHA-1
    assert attr_value(sak.attrs, "SIG_ALGORITHM") == 1  # RSA
    assert [t.spi for t in teks] == [0x1122AABB, 0x3344CCDD]
    assert all(type(t) is GDOI_SAT_IPsec_RFC3547 for t in teks)
    # Frame 10: PULL message 4: SEQ 0 and the KEK key packet (IV || 3DES key, RSA key).
    kd = msgs[9][GDOI_KD]
    assert msgs[9][GDOI_SEQ].seq == 0
    kek = [kp for kp in kd.key_packets if kp.kd_type == 2][0]
    assert attr_value(kek.attrs, "KEK_ALGORITHM_KEY") == b"IVIVIVIV" + b"ABCDEFGHIJKLMNOPQRSTUVWX"
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    public_key = load_der_public_key(attr_value(kek.attrs, "SIG_ALGORITHM_KEY"))
    assert public_key.key_size == 1024
    # Frames 31, 32: the two rekeys, SEQ 1 and SEQ 2, with SEQ, SA, KD, SIG.
    for frame, seq in ((31, 1), (32, 2)):
        push = msgs[frame - 1]
        assert push.exch_type == 33 and push.spi == b"abcdefgh01234567"
        assert push[GDOI_SEQ].seq == seq
        assert [type(p).__name__ for p in push.iterpayloads()][1:5] == \
            ["GDOI_SEQ", "GDOI_SA", "GDOI_KD", "GDOI_SIG"]
        assert len(push[GDOI_SIG].sig) == 128  # RSA-1024 modulus


def test_loopback_byte_swapped_port_is_kept_as_sent(vectors_dir):
    msgs = [GDOI(raw) for raw in gdoi_messages(vectors_dir, PLAINTEXT_PCAPS[2])]
    ports = [(t.src_id_port, t.dst_id_port) for t in msgs[7][GDOI_SA].sub_payloads()]
    # configured 1024 = 0x0400, written little-endian by the 2003 code: 0x0004 on the wire
    assert ports[0] == (4, 4)


def test_encrypted_messages_keep_a_raw_body(vectors_dir):
    wire = gdoi_messages(vectors_dir, "gdoid-3clients-ks.pcap")
    push = GDOI(wire[30])
    assert push.encrypted and isinstance(push.payload, Raw)
    assert push.summary().startswith(
        "GDOI GROUPKEY-PUSH KEK 0x%s (encrypted)" % b"abcdefgh01234567".hex())
    assert bytes(push) == wire[30]


def test_summaries():
    push = (GDOI(init_cookie=b"\x01" * 8, resp_cookie=b"\x02" * 8, exch_type=33)
            / GDOI_SEQ(seq=7) / GDOI_SIG())
    assert GDOI(bytes(push)).summary() == "GDOI GROUPKEY-PUSH seq=7 KEK 0x%s" % (
        "01" * 8 + "02" * 8)
    pull = GDOI(exch_type=32, id=0x3CC1F923) / GDOI_HASH()
    assert GDOI(bytes(pull)).summary() == "GDOI GROUPKEY-PULL M-ID 0x3cc1f923"
    assert GDOI_SEQ(seq=3).summary() == "SEQ 3"


def test_ack_answers_its_push():
    spi = dict(init_cookie=b"k" * 8, resp_cookie=b"s" * 8)
    push = GDOI(exch_type=33, **spi) / GDOI_SEQ(seq=5) / GDOI_SIG()
    ack = GDOI(exch_type=35, **spi) / GDOI_HASH() / GDOI_SEQ(seq=5) / GDOI_ID()
    stale = GDOI(exch_type=35, **spi) / GDOI_HASH() / GDOI_SEQ(seq=4) / GDOI_ID()
    assert ack.answers(push) and not stale.answers(push) and not push.answers(ack)


# -- Registration -------------------------------------------------------------------------

def test_udp_848_both_directions_and_udp_500_untouched():
    for sport, dport in ((848, 848), (848, 40000), (40000, 848)):
        pkt = IP(bytes(IP() / UDP(sport=sport, dport=dport) / GDOI(exch_type=33)))
        assert type(pkt[UDP].payload) is GDOI
    built = IP() / UDP() / GDOI()
    assert (built[UDP].sport, built[UDP].dport) == (848, 848)
    ike = IP(bytes(IP() / UDP(sport=500, dport=500) / ISAKMP(exch_type=2, next_payload=1)
                   / ISAKMP_payload_SA()))
    assert type(ike[UDP].payload) is ISAKMP and type(ike[ISAKMP].payload) is ISAKMP_payload_SA
    assert ike.haslayer(ISAKMP) and IP(bytes(IP() / UDP() / GDOI())).haslayer(ISAKMP)


# -- Bad input ------------------------------------------------------------------------------

def assert_survives(raw):
    """Dissection does not raise and building gives the input back, byte for byte."""
    msg = GDOI(raw)
    assert bytes(msg) == raw
    return msg


def test_every_truncation_of_a_rekey_survives(vectors_dir):
    raw = gdoi_messages(vectors_dir, PLAINTEXT_PCAPS[0])[30]
    for cut in range(1, len(raw)):  # zero octets means "build the defaults" in Scapy
        assert_survives(raw[:cut])


def test_payload_length_overrunning_the_message():
    raw = bytes(GDOI(exch_type=33) / GDOI_SEQ(seq=1, length=200))
    msg = assert_survives(raw)
    assert type(msg.payload) is GDOI_Payload and msg.payload.length == 200


def test_payload_length_below_its_header():
    raw = bytes(GDOI(exch_type=33) / GDOI_SEQ(seq=1, length=2) / GDOI_SIG())
    assert type(assert_survives(raw).payload) is GDOI_Payload


def test_sub_payload_chain_that_does_not_end():
    # The SA KEK claims an SA TEK follows, but the SA length ends there.
    sa = GDOI_SA(payloads=GDOI_SAK(next_payload=16))
    msg = assert_survives(bytes(GDOI(exch_type=33) / sa / GDOI_SIG()))
    assert isinstance(msg[GDOI_SA].payloads, GDOI_SAK)
    assert msg[GDOI_SIG]  # the top-level chain continues after the SA


def test_sub_payload_longer_than_its_sa():
    sa = GDOI_SA(payloads=GDOI_GAP(length=60, attrs=[GDOI_GAP_Attr(type=1, value=5)]))
    msg = assert_survives(bytes(GDOI(exch_type=33) / sa / GDOI_SEQ(seq=9)))
    assert type(msg[GDOI_SA].payloads) is GDOI_Payload
    assert msg[GDOI_SEQ].seq == 9


def test_attribute_length_beyond_the_payload():
    gap = GDOI_GAP(attrs=[GDOI_GAP_Attr(type=5, data=b"\x00\x00\x13\x88", length=0xFFFF)])
    msg = assert_survives(bytes(GDOI(exch_type=33) / GDOI_SA(payloads=gap)))
    assert msg[GDOI_SA].payloads.attrs[0].length == 0xFFFF


def test_truncated_attribute_header_is_raw():
    gap = GDOI(exch_type=33) / GDOI_SA(payloads=GDOI_GAP())
    raw = bytearray(bytes(gap))
    raw += b"\x80\x01"  # half an attribute
    raw[24:28] = len(raw).to_bytes(4, "big")
    raw[28 + 2:28 + 4] = (len(raw) - 28).to_bytes(2, "big")  # SA length
    raw[28 + 16 + 2:28 + 16 + 4] = (len(raw) - 28 - 16).to_bytes(2, "big")  # GAP length
    msg = assert_survives(bytes(raw))
    assert isinstance(msg[GDOI_SA].payloads.attrs[0], Raw)


def test_unknown_payload_and_attribute_types():
    raw = bytes(GDOI(exch_type=33, next_payload=200) / GDOI_Payload(next_payload=18, load=b"zz")
                / GDOI_SEQ(seq=3))
    msg = assert_survives(raw)
    assert type(msg.payload) is GDOI_Payload and msg.payload.load == b"zz"
    assert msg[GDOI_SEQ].seq == 3
    odd = GDOI_KEK_Attr(type=0x7ABC, value=7)
    assert GDOI_KEK_Attr(bytes(odd)).type == 0x7ABC and GDOI_KEK_Attr(bytes(odd)).type_name == "31420"
    unknown_tek = GDOI_SAT(protocol_id=3, tek=b"iec61850")
    assert type(GDOI_SAT(bytes(unknown_tek))) is GDOI_SAT


def test_garbage_survives():
    for raw in (b"\x00", b"x" * 27, b"\xff" * 64, bytes(range(256))):
        assert_survives(raw)


def rfc6407_push_with_everything():
    """An RFC 6407 rekey with the payloads the gdoid captures lack: DELETE, NOTIFY,
    CERT, GAP with D3P policy, IPv6 identities, AH, SID key packets."""
    spi = dict(init_cookie=b"abcdefgh", resp_cookie=b"01234567")
    return bytes(
        GDOI(exch_type=33, **spi) / GDOI_SEQ(seq=9)
        / GDOI_DELETE(protocol_id=3, spis=[0x11111111, 0x22222222])
        / GDOI_SA(payloads=[
            GDOI_SAK(src_id_type=5, src_id="2001:db8::1", dst_id_type=5, dst_id="ff05::1:3",
                     spi=b"ABCDEFGH01234567", attrs=[
                         GDOI_KEK_Attr(type="KEK_ALGORITHM", value="KEK_ALG_AES"),
                         GDOI_KEK_Attr(type="KEK_KEY_LIFETIME", value=86400),
                         GDOI_KEK_Attr(type="KEK_ACK_REQUESTED", value=3)]),
            GDOI_GAP(attrs=[GDOI_GAP_Attr(type="ACTIVATION_TIME_DELAY", value=30),
                            GDOI_GAP_Attr(type="D3P_TYPE", value=1),
                            GDOI_GAP_Attr(type="D3P_WINDOW_SIZE", value=100000)]),
            GDOI_SAT_IPsec(src_id_type=6, src_id="2001:db8:1::/48", dst_id_type=6,
                           dst_id="2001:db8:2::/48", transform_id=20, spi=0x33333333, attrs=[
                               GDOI_IPsec_Attr(type="ADDRESS_PRESERVATION", value=4),
                               GDOI_IPsec_Attr(type="SA_DIRECTION", value=3)]),
            GDOI_SAT_IPsec(protocol_id=2, transform_id=5, spi=0x44444444)])
        / GDOI_KD(key_packets=[
            GDOI_KeyPacket(kd_type="TEK", spi=(0x33333333).to_bytes(4, "big"), attrs=[
                GDOI_KD_TEK_Attr(type=1, value=bytes(36))]),
            GDOI_KeyPacket(kd_type="SID", attrs=[GDOI_KD_SID_Attr(type=1, value=8),
                                                 GDOI_KD_SID_Attr(type=2, value=b"\x01")])])
        / GDOI_CERT(cert_data=b"0\x82cert") / GDOI_NOTIFY(notify_type=27, notify_data=b"x")
        / GDOI_SIG(sig=b"S" * 64))


def _reference_messages():
    from pathlib import Path
    here = Path(__file__).resolve().parent / "vectors"
    out = [rfc6407_push_with_everything()]
    for name in PLAINTEXT_PCAPS[:1] + PLAINTEXT_PCAPS[2:3]:
        out += [bytes(p[UDP].payload) for p in rdpcap(str(here / name))]
    return out


REFERENCE = _reference_messages()


@st.composite
def mutated_messages(draw):
    raw = bytearray(draw(st.sampled_from(REFERENCE)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and raw:
            raw[pos] = draw(st.sampled_from([0, 1, 4, 8, 15, 16, 17, 18, 22, 0x80, 0xFF]))
        elif kind == "cut":
            del raw[pos:]
        elif kind == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and raw:
            del raw[pos:pos + draw(st.integers(1, 8))]
    return bytes(raw)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages())
def test_mutated_reference_messages_never_raise_and_rebuild(raw):
    conf.debug_dissector = 1
    if not raw:
        return  # zero octets means "build the defaults" in Scapy
    msg = GDOI(raw)
    assert bytes(msg) == raw
    msg.summary()
    repr(msg)


def test_json_vectors_cover_the_same_messages(vectors_dir):
    """The pcaps' ISAKMP bytes are the logged bytes (an independent record of them)."""
    log = json.loads((vectors_dir / "gdoid-3clients-ks.vectors.json").read_text())
    wire = gdoi_messages(vectors_dir, "gdoid-3clients-ks.pcap")
    for message in log["messages"]:
        assert wire[message["frame"] - 1].hex() == message["wire_hex"]


def structure(msg):
    return [type(layer).__name__ for layer in iter_gdoi_payloads(msg)]


def test_rfc6407_push_with_everything_dissects_to_its_classes():
    msg = assert_survives(rfc6407_push_with_everything())
    assert structure(msg) == [
        "GDOI", "GDOI_SEQ", "GDOI_DELETE", "GDOI_SA", "GDOI_SAK", "GDOI_GAP", "GDOI_SAT_IPsec",
        "GDOI_SAT_IPsec", "GDOI_KD", "GDOI_CERT", "GDOI_NOTIFY", "GDOI_SIG"]
    sak = msg[GDOI_SAK]
    assert sak.sprintf("%src_id_type% %src_id% %dst_id%") == "ID_IPV6_ADDR 2001:db8::1 ff05::1:3"
    tek = msg[GDOI_SA].sub_payloads()[2]
    assert tek.sprintf("%src_id%") == "2001:db8:1::/ffff:ffff:ffff::"
    assert attr_value(msg[GDOI_GAP].attrs, "D3P_WINDOW_SIZE") == 100000
    assert msg[GDOI_DELETE].spis == [b"\x11" * 4, b"\x22" * 4]
    sid = msg[GDOI_KD].key_packets[1]
    assert sid.spi_size == 0 and [a.is_basic for a in sid.attrs] == [True, False]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 63), st.integers(1, 255))
def test_mutating_an_opaque_body_keeps_the_structure(position, mask):
    """Bytes inside a SIG body carry no structure: changing them changes nothing else."""
    conf.debug_dissector = 1
    raw = bytearray(rfc6407_push_with_everything())
    raw[len(raw) - 64 + position] ^= mask
    before = structure(GDOI(rfc6407_push_with_everything()))
    msg = GDOI(bytes(raw))
    assert structure(msg) == before and bytes(msg) == bytes(raw)


def test_answers_needs_the_same_kek_spi():
    push = GDOI(exch_type=33, init_cookie=b"k" * 8, resp_cookie=b"s" * 8) / GDOI_SEQ(seq=5)
    other_kek = GDOI(exch_type=35, init_cookie=b"k" * 8, resp_cookie=b"t" * 8) / GDOI_HASH() \
        / GDOI_SEQ(seq=5)
    assert not other_kek.answers(push)


def test_encoding_when_both_layouts_fit():
    # An RFC 3547 SA TEK whose 1024-octet attribute also reads as RFC 6407 IDs:
    # the ID lengths that match their ID types decide.
    # Read as RFC 6407, the SRC ID length is 0x040a (RFC 3547 length 4, then the first
    # address octet) and the DST ID block lands inside the attribute's data.
    data = bytearray(1024)
    data[1014:1019] = b"\x01\x00\x00\x00\x00"  # DST ID: IPV4_ADDR, port 0, length 0
    sat = GDOI_SAT_IPsec_RFC3547(src_id_type=1, src_id="10.0.0.1", dst_id_type=1,
                                 dst_id="10.0.0.2", transform_id=3, spi=5,
                                 attrs=[GDOI_IPsec_Attr(type=13, data=bytes(data))])
    raw = bytes(sat)
    assert _sat_fits_both(raw)
    assert detect_sat_encoding(raw) == "rfc3547"
    assert type(GDOI_SAT(raw)) is GDOI_SAT_IPsec_RFC3547 and GDOI_SAT(raw).spi == 5
    # Equally plausible readings: RFC 6407 wins (the default encoding).
    tie = bytes.fromhex("0000002f01000b0000000b0000028e91290638c05e8003462d0001000000070000"
                        "800922f900020006ac1bfc63dfbc")
    assert _sat_fits_both(tie) and detect_sat_encoding(tie) == "rfc6407"


def _sat_fits_both(raw):
    from scapy_gdoi.gdoi import _sat_layout_fits
    return _sat_layout_fits(raw, 1) and _sat_layout_fits(raw, 2)


@pytest.mark.parametrize("payload_type, payload", [
    (18, bytes(GDOI_SEQ(seq=1, length=12)) + b"\0" * 4),  # SEQ is 8 octets
    (12, bytes(GDOI_DELETE(spis=[b"abcd"], length=20)) + b"\0" * 4),  # 12 + 4 * 1 != 20
    (12, bytes(GDOI_DELETE(spis=[b"abcd"], num_spis=3))),  # the count overruns the length
    (11, bytes(GDOI_NOTIFY(spi=b"s" * 8, spi_size=40))),  # the SPI overruns the payload
    (15, bytes(GDOI_SAK(src_id_len=200))),  # an ID overrunning the payload
    (15, bytes(GDOI_SAK(attrs=[GDOI_KEK_Attr(type=2, value=3)], length=39))),  # half an attribute
    (17, bytes(GDOI_KD(key_packets=[GDOI_KeyPacket(kd_length=300)]))),
    (5, bytes(GDOI_ID(length=6))),  # shorter than an ID header
])
def test_payloads_that_do_not_fit_their_layout_stay_generic(payload_type, payload):
    raw = bytes(GDOI(exch_type=33, next_payload=payload_type)) + payload
    raw = raw[:24] + len(raw).to_bytes(4, "big") + raw[28:]
    msg = assert_survives(raw)
    assert type(msg.payload) is GDOI_Payload


def test_junk_inside_the_sa_stays_raw_and_the_chain_goes_on():
    sa = bytes(GDOI_SA(payloads=GDOI_GAP(attrs=[GDOI_GAP_Attr(type=1, value=5)])))
    sa = sa[:2] + (len(sa) + 3).to_bytes(2, "big") + sa[4:] + b"JNK"
    raw = bytes(GDOI(exch_type=33, next_payload=1)) + bytes([18]) + sa[1:] + bytes(GDOI_SEQ(seq=4))
    raw = raw[:24] + len(raw).to_bytes(4, "big") + raw[28:]
    msg = assert_survives(raw)
    gap = msg[GDOI_SA].payloads
    assert isinstance(gap, GDOI_GAP) and type(gap.payload) is Raw and gap.payload.load == b"JNK"
    assert msg[GDOI_SEQ].seq == 4


def test_an_sa_holds_only_sak_gap_and_sat():
    inner = bytes(GDOI_SA(sa_next_payload=18, payloads=GDOI_SEQ(seq=1)))
    nested = inner
    for _ in range(600):  # crafted nesting must not exhaust the recursion limit
        nested = bytes(GDOI_SA(sa_next_payload=1))[:16] + nested
        nested = nested[:2] + len(nested).to_bytes(2, "big") + nested[4:]
    raw = bytes(GDOI(exch_type=33, next_payload=1)) + nested
    raw = raw[:24] + len(raw).to_bytes(4, "big") + raw[28:]
    msg = assert_survives(raw)
    assert type(msg[GDOI_SA].payloads) is GDOI_Payload
    assert type(GDOI_SA(inner).payloads) is GDOI_Payload  # a SEQ inside an SA


def test_identification_data_follows_the_id_type():
    fqdn = GDOI_ID(id_data="gm-1.example.com", id_type="ID_FQDN")  # keyword order is free
    assert bytes(fqdn)[8:] == b"gm-1.example.com"
    assert GDOI_ID(bytes(fqdn)).sprintf("%id_data%") == "gm-1.example.com"
    assert bytes(GDOI_ID(id_type=3, id_data="ops@example.com"))[8:] == b"ops@example.com"
    assert bytes(GDOI_ID(id_type=5, id_data="2001:db8::9"))[8:] == bytes.fromhex(
        "20010db8000000000000000000000009")
    assert bytes(GDOI_ID(id_type=7, id_data="10.0.0.1-10.0.0.9"))[8:] == bytes.fromhex(
        "0a0000010a000009")
    assert GDOI_ID(bytes(GDOI_ID(id_type=8, id_data="2001:db8::1-2001:db8::9"))).sprintf(
        "%id_data%") == "2001:db8::1-2001:db8::9"
    assert bytes(GDOI_ID(id_type=4, id_data="10.1.0.0/255.255.0.0"))[8:] == bytes.fromhex(
        "0a010000ffff0000")
    with pytest.raises(ValueError):
        bytes(GDOI_ID(id_type=5, id_data="10.0.0.1"))  # IPv4 text for an IPv6 type
    with pytest.raises(ValueError):
        bytes(GDOI_ID(id_type=1, id_data="not-an-address"))
    odd = GDOI_ID(bytes(GDOI_ID(id_type=1, id_data=b"\x01\x02\x03")))
    assert odd.sprintf("%id_data%") == "0x010203"


def test_attribute_rules_hold_on_assignment_and_refuse_contradictions():
    lifetime = GDOI_KEK_Attr(type="KEK_KEY_LIFETIME")
    lifetime.value = 86400  # mandated TLV, 4 octets
    assert bytes(lifetime) == bytes.fromhex("0004000400015180")
    big = GDOI_KEK_Attr(type="KEK_ALGORITHM", value=3)
    big.value = 70000
    assert not big.is_basic and big.data == (70000).to_bytes(3, "big")
    # Key packet attributes are TLV (RFC 6407 §5.6), except NUMBER_OF_SID_BITS.
    assert bytes(GDOI_KD_TEK_Attr(type=1, value=5)) == bytes.fromhex("0001000105")
    assert bytes(GDOI_KD_SID_Attr(type=1, value=5)) == bytes.fromhex("80010005")
    for bad in (dict(af=0, type=2, value=3), dict(af=1, type=2, data=b"xx"),
                dict(type=40000, value=1), dict(af=1, type=2, value=70000)):
        with pytest.raises(ValueError):
            bytes(GDOI_KEK_Attr(**bad))


def test_sa_takes_a_list_and_delete_takes_numbers():
    as_list = GDOI_SA(payloads=[GDOI_SAK(), GDOI_GAP()])
    assert bytes(as_list) == bytes(GDOI_SA(payloads=GDOI_SAK() / GDOI_GAP()))
    assert [type(p) for p in GDOI_SA(bytes(as_list)).sub_payloads()] == [GDOI_SAK, GDOI_GAP]
    assert bytes(GDOI_DELETE(spis=[0x11223344]))[-4:] == bytes.fromhex("11223344")
    with pytest.raises(ValueError):
        bytes(GDOI_DELETE(spis=[b"abcd", b"abcdefgh01234567"]))


def test_clear_lengths_after_editing_a_dissected_rekey(vectors_dir):
    msg = GDOI(gdoi_messages(vectors_dir, PLAINTEXT_PCAPS[0])[30])
    tek = msg[GDOI_SA].sub_payloads()[0]
    tek.src_id_type = 6
    tek.src_id = "2001:db8::/64"
    msg[GDOI_KD].key_packets[0].attrs[0].data = b"k" * 40
    stale = GDOI(bytes(msg))  # every length still says what was read
    assert type(stale[GDOI_SA].sub_payloads()[0]) is not type(tek) or \
        stale[GDOI_SA].sub_payloads()[0].src_id_len != 32
    fresh = GDOI(bytes(clear_lengths(msg)))
    tek = fresh[GDOI_SA].sub_payloads()[0]
    assert tek.src_id_len == 32 and tek.sprintf("%src_id%") == "2001:db8::/ffff:ffff:ffff:ffff::"
    assert fresh[GDOI_KD].key_packets[0].attrs[0].data == b"k" * 40
    assert fresh[GDOI_SIG].sig == msg[GDOI_SIG].sig and fresh[GDOI_SEQ].seq == 1
    assert fresh.length == len(bytes(fresh)) and not fresh.haslayer(Padding)
