"""The Scapy IP-D3P layer (scapy_gdoi.d3p), wire format of DECISIONS.md §3.

Expected bytes are laid out field by field from the DECISIONS.md figure; the
ESP tests go through scapy's own SecurityAssociation, so the D3P binding is
checked the way a user decrypting a GET VPN tunnel packet would hit it.
"""
import datetime
import socket
import struct

import pytest
from scapy.compat import raw
from scapy.config import conf
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.packet import Raw

import d3p_fast
from scapy_gdoi import _consts
from scapy_gdoi.d3p import (D3P, bind_d3p_ip_proto, d3p_ip_proto, d3p_now_ms, d3p_stamp,
                            format_posix_ms)

NOW = 1_764_878_000_000
INNER = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=2000) / Raw(b"payload")


@pytest.fixture(autouse=True)
def visible_dissector_errors():
    # Scapy hides dissection exceptions in Raw unless asked (STYLE.md 1e).
    saved = conf.debug_dissector
    conf.debug_dissector = True
    yield
    conf.debug_dissector = saved


def test_build_lays_out_every_field():
    built = raw(D3P(nh=17, reserved=0, timestamp=NOW))
    assert built == bytes([
        17,  # Next Header: UDP
        3,  # Header Length: 3 words, computed on build
        1,  # Timestamp Type: POSIX-TIME-MSEC
        0,  # Reserved
    ]) + NOW.to_bytes(8, "big")  # Timestamp, big-endian
    assert len(built) == _consts.D3P_HEADER_LEN


def test_next_header_follows_the_payload():
    assert raw(D3P() / IP())[0] == socket.IPPROTO_IPIP
    assert raw(D3P() / IPv6())[0] == socket.IPPROTO_IPV6
    assert raw(D3P() / UDP())[0] == socket.IPPROTO_UDP
    assert raw(D3P() / ICMP())[0] == socket.IPPROTO_ICMP


def test_header_length_covers_extension_words():
    assert raw(D3P(extension=b"\x01\x02\x03\x04"))[1] == 4
    padded = raw(D3P(extension=b"\x01\x02\x03"))  # padded to a whole word
    assert padded[1] == 4 and len(padded) == 16 and padded[-1] == 0


def test_explicit_wrong_header_length_is_kept():
    # Forcing a bad value on purpose is how malformed packets are made for tests.
    built = raw(D3P(len=2, timestamp=NOW))
    assert built[1] == 2
    assert d3p_fast.check_packet(built, NOW, 0) == d3p_fast.MALFORMED


def test_dissect_fields_by_name():
    wire = bytes([41, 3, 1, 0xAB]) + NOW.to_bytes(8, "big") + raw(IPv6(dst="2001:db8::1"))
    pkt = D3P(wire)
    assert (pkt.nh, pkt.len, pkt.tsType, pkt.reserved, pkt.timestamp) == (41, 3, 1, 0xAB, NOW)
    assert pkt.extension == b""
    assert isinstance(pkt.payload, IPv6) and pkt[IPv6].dst == "2001:db8::1"


def test_dissect_longer_header_skips_extension_words():
    extension = b"EXT1EXT2"
    wire = bytes([4, 5, 1, 0]) + NOW.to_bytes(8, "big") + extension + raw(INNER)
    pkt = D3P(wire)
    assert pkt.extension == extension
    assert pkt[IP].dst == "10.0.0.2" and pkt[UDP].dport == 2000
    assert raw(pkt) == wire


@pytest.mark.parametrize("wire", [
    b"\x04", b"\x04\x03\x01", bytes([4, 3, 1, 0]) + bytes(7),  # truncated
    bytes([4, 0, 1, 0]) + bytes(8), bytes([4, 255, 1, 0]) + bytes(8),  # bad Header Length
    bytes([4, 3, 9, 0]) + bytes(8),  # unknown Timestamp Type
], ids=["1", "3", "11", "len0", "len255", "type9"])
def test_malformed_headers_still_dissect(wire):
    pkt = IP(raw(IP(proto=_consts.D3P_IP_PROTO) / Raw(wire)))
    assert raw(pkt)[20:] == wire  # nothing lost, nothing invented
    if len(wire) < _consts.D3P_HEADER_LEN:
        assert D3P not in pkt and pkt[Raw].load == wire
    else:
        assert pkt[D3P].len == wire[1]
    assert d3p_fast.check_packet(raw(pkt), NOW, 0, offset=20) == d3p_fast.MALFORMED


def test_timestamp_shown_as_number_and_utc():
    pkt = D3P(timestamp=NOW)
    field = pkt.get_field("timestamp")
    utc = datetime.datetime.fromtimestamp(NOW // 1000, tz=datetime.timezone.utc)
    text = field.i2repr(pkt, NOW)
    assert text.startswith(str(NOW))
    assert utc.strftime("%Y-%m-%dT%H:%M:%S") in text and "Z" in text
    assert format_posix_ms(NOW + 7).endswith(".007Z")
    assert format_posix_ms(2 ** 64 - 1) == "beyond year 9999"
    assert field.i2repr(pkt, 2 ** 64 - 1).startswith(str(2 ** 64 - 1))
    # An unknown Timestamp Type has no known epoch: the number alone.
    assert field.i2repr(D3P(tsType=9), NOW) == str(NOW)
    assert "2025-12-04T19:53:20.000Z" in pkt.show(dump=True)


def test_summary_shows_timestamp_and_type():
    pkt = IP(src="192.0.2.1", dst="192.0.2.2") / D3P(timestamp=NOW) / INNER
    assert pkt.summary() == ("IP / D3P ts=%d (POSIX-TIME-MSEC) / IP / UDP 10.0.0.1:1000 > "
                             "10.0.0.2:2000 / Raw" % NOW)
    assert D3P(tsType=7, timestamp=5).summary() == "D3P ts=5 (type 7)"


def test_round_trip_over_ipv4():
    pkt = IP(src="192.0.2.1", dst="192.0.2.2") / D3P(timestamp=NOW) / INNER
    wire = raw(pkt)
    assert wire[9] == _consts.D3P_IP_PROTO  # IPv4 Protocol
    again = IP(wire)
    assert again[D3P].timestamp == NOW and again[D3P].len == 3
    assert again[D3P].nh == socket.IPPROTO_IPIP
    assert raw(again[D3P].payload) == raw(INNER)
    assert d3p_fast.check_packet(wire, NOW, 0, offset=20) == d3p_fast.FRESH


def test_round_trip_over_ipv6():
    inner6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5, dport=6) / Raw(b"x")
    pkt = IPv6(src="2001:db8:f::1", dst="2001:db8:f::2") / D3P(timestamp=NOW) / inner6
    wire = raw(pkt)
    assert wire[6] == _consts.D3P_IP_PROTO  # IPv6 Next Header
    again = IPv6(wire)
    assert again[D3P].nh == socket.IPPROTO_IPV6 and again[D3P].timestamp == NOW
    assert again[D3P][IPv6].dst == "2001:db8::2" and again[UDP].dport == 6
    assert d3p_fast.check_packet(wire, NOW + 5000, 5000, offset=40) == d3p_fast.FRESH


def test_answers_look_through_d3p():
    request = IP(src="192.0.2.1", dst="192.0.2.2") / D3P() / ICMP(type=8, id=7, seq=1)
    reply = IP(src="192.0.2.2", dst="192.0.2.1") / D3P() / ICMP(type=0, id=7, seq=1)
    request, reply = IP(raw(request)), IP(raw(reply))
    assert reply.answers(request) and not request.answers(reply)
    assert reply.hashret() == request.hashret()


@pytest.fixture
def restore_binding():
    yield
    bind_d3p_ip_proto()


def test_protocol_number_is_configurable(restore_binding):
    old_wire = raw(IP() / D3P(timestamp=NOW) / INNER)
    bind_d3p_ip_proto(200)
    assert d3p_ip_proto() == 200
    wire = raw(IP() / D3P(timestamp=NOW) / INNER)
    assert wire[9] == 200 and IP(wire)[D3P].timestamp == NOW
    assert raw(IPv6() / D3P())[6] == 200
    assert IPv6(raw(IPv6() / D3P(timestamp=NOW)))[D3P].timestamp == NOW
    # The old number no longer means D3P.
    assert D3P not in IP(old_wire)
    bind_d3p_ip_proto()
    assert d3p_ip_proto() == _consts.D3P_IP_PROTO == 253
    assert IP(old_wire)[D3P].timestamp == NOW


@pytest.mark.parametrize("bad", [-1, 256, 1000])
def test_protocol_number_out_of_range(restore_binding, bad):
    with pytest.raises(ValueError, match="0..255"):
        bind_d3p_ip_proto(bad)
    assert d3p_ip_proto() == _consts.D3P_IP_PROTO


def test_stamp_returns_a_new_stamped_packet():
    pkt = IP(dst="192.0.2.2") / D3P() / INNER
    before = d3p_now_ms()
    stamped = d3p_stamp(pkt)
    after = d3p_now_ms()
    assert pkt[D3P].timestamp == 0  # the original is untouched
    assert before <= stamped[D3P].timestamp <= after
    assert d3p_stamp(pkt, now_ms=NOW)[D3P].timestamp == NOW
    wire = raw(d3p_stamp(pkt))
    assert d3p_fast.check_packet(wire, d3p_now_ms(), 1000, offset=20) == d3p_fast.FRESH


def test_stamp_inserts_a_header_after_the_ip_header():
    plain = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1000, dport=2000) / b"payload"
    wire = raw(d3p_stamp(plain, now_ms=NOW))
    stamped = IP(wire)
    assert stamped.proto == _consts.D3P_IP_PROTO and stamped.len == len(wire) == 20 + 12 + 15
    assert (stamped[D3P].nh, stamped[D3P].timestamp) == (socket.IPPROTO_UDP, NOW)
    assert stamped[UDP].dport == 2000 and stamped[UDP].load == b"payload"
    recomputed = stamped.copy()
    del recomputed.chksum
    assert IP(raw(recomputed)).chksum == stamped.chksum  # the checksum covers the new header
    v6 = IPv6(raw(d3p_stamp(IPv6(src="2001:db8::1") / UDP(sport=7, dport=9) / b"x", now_ms=NOW)))
    assert v6.nh == _consts.D3P_IP_PROTO and v6.plen == 12 + 9 and v6[D3P].nh == 17
    assert v6[UDP].dport == 9
    assert plain.proto == socket.IPPROTO_UDP and D3P not in plain  # the original is untouched


def test_stamp_needs_a_d3p_or_ip_layer():
    with pytest.raises(ValueError, match="no D3P or IP layer"):
        d3p_stamp(UDP() / b"x")


# -- inside ESP tunnel mode (outer IP | ESP nh=D3P | D3P nh=4/41 | inner IP) ---------------

GW1, GW2 = "198.51.100.1", "198.51.100.2"


def _sa(crypt_algo, **extra):
    keys = {"NULL": None, "AES-CBC": bytes(range(16))}
    return SecurityAssociation(ESP, spi=0x1001, crypt_algo=crypt_algo,
                               crypt_key=keys[crypt_algo], auth_algo="HMAC-SHA1-96",
                               auth_key=b"\x0b" * 20, **extra)


def _tunnel_packet(timestamp):
    # ESP over the gateways' header whose protected payload is D3P | inner IP:
    # the wire form of ESP tunnel mode with IP-D3P (DECISIONS.md §3).
    return IP(src=GW1, dst=GW2) / D3P(timestamp=timestamp) / INNER


@pytest.mark.parametrize("crypt_algo", ["NULL", "AES-CBC"])
def test_esp_tunnel_round_trip(crypt_algo):
    sa = _sa(crypt_algo)
    encrypted = IP(raw(sa.encrypt(_tunnel_packet(NOW))))
    assert encrypted.proto == socket.IPPROTO_ESP and ESP in encrypted
    assert D3P not in encrypted
    decrypted = sa.decrypt(encrypted)
    assert decrypted[IP].dst == GW2 and decrypted.proto == _consts.D3P_IP_PROTO
    assert decrypted[D3P].timestamp == NOW and decrypted[D3P].nh == socket.IPPROTO_IPIP
    assert raw(decrypted[D3P].payload) == raw(INNER)


def test_esp_next_header_is_d3p():
    # With the NULL cipher the ESP trailer is readable: ... Pad Length | Next Header | ICV.
    encrypted = raw(_sa("NULL").encrypt(_tunnel_packet(NOW)))
    icv_size = 12  # HMAC-SHA1-96, RFC 2404
    assert encrypted[-icv_size - 1] == _consts.D3P_IP_PROTO
    # and the D3P header starts the ESP payload (20 IP + 8 ESP header octets)
    assert d3p_fast.parse_timestamp(encrypted, 28) == NOW


def test_tunnel_mode_sa_decrypts_to_d3p():
    encrypted = IP(raw(_sa("AES-CBC").encrypt(_tunnel_packet(NOW))))
    tunnel_sa = _sa("AES-CBC", tunnel_header=IP(src=GW1, dst=GW2))
    inner = tunnel_sa.decrypt(encrypted)
    # scapy drops the tunnel header and classes the payload by ESP Next Header.
    assert isinstance(inner, D3P) and inner.timestamp == NOW
    assert inner[IP].src == "10.0.0.1" and inner[Raw].load == b"payload"


def test_esp_tunnel_ipv6_inner():
    inner6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=7, dport=8) / Raw(b"six")
    sa = _sa("AES-CBC")
    pkt = IPv6(src="2001:db8:f::1", dst="2001:db8:f::2") / D3P(timestamp=NOW) / inner6
    decrypted = sa.decrypt(IPv6(raw(sa.encrypt(pkt))))
    assert decrypted[D3P].nh == socket.IPPROTO_IPV6 and decrypted[D3P].timestamp == NOW
    assert raw(decrypted[D3P].payload) == raw(inner6)


def test_summary_survives_unset_fields_and_flags_short_headers():
    assert D3P(timestamp=None).summary().startswith("D3P ts=None (POSIX-TIME-MSEC)")
    assert D3P(tsType=None).summary().startswith("D3P ts=0 (type None)")
    short = D3P(bytes([socket.IPPROTO_IPIP, 0, 1, 0]) + bytes(8) + raw(IP()))
    assert "malformed hlen=0" in short.summary()
    assert "malformed" not in D3P(bytes(D3P() / IP())).summary()


@pytest.mark.parametrize("bad", [True, "253", 253.0])
def test_protocol_number_must_be_an_int(restore_binding, bad):
    with pytest.raises(ValueError):
        bind_d3p_ip_proto(bad)
    assert d3p_ip_proto() == _consts.D3P_IP_PROTO


def test_extension_longer_than_header_length_can_say_is_refused():
    longest = (255 - _consts.D3P_HEADER_LEN_UNITS) * 4
    assert raw(D3P(extension=b"x" * longest))[1] == 255
    with pytest.raises(ValueError):
        raw(D3P(extension=b"x" * (longest + 1)))
