# SPDX-License-Identifier: GPL-2.0-only
"""IP-D3P (IP Delivery Delay Detection Protocol) header, draft-weis-delay-detection.

The draft text could not be read, so the wire format is the project's
(DECISIONS.md §3): 12 octets, big-endian::

     0      Next Header     IP protocol number of what follows
     1      Header Length   in 4-octet units, 3 for the 8-octet timestamp
     2      Timestamp Type  1 = POSIX-TIME-MSEC
     3      Reserved        0 on send, ignored on receive
     4..11  Timestamp       ms since 1970-01-01 UTC

A Header Length above 3 announces extra 4-octet words after the timestamp; they
are kept opaque in the ``extension`` field.

Carriage (DECISIONS.md §3): directly over IPv4/IPv6 with the D3P protocol number
(default 253, RFC 3692 experimentation; change it with `bind_d3p_ip_proto`), or
inside ESP tunnel mode as outer IP | ESP (Next Header = D3P) | D3P (Next Header
4 or 41) | inner IP.  Scapy's `SecurityAssociation.decrypt` picks the class of
the decrypted payload from the ESP Next Header through the IP binding, so the
same binding covers both.

>>> inner = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=2000)
>>> (D3P(timestamp=1764878000000) / inner).summary()
'D3P ts=1764878000000 (POSIX-TIME-MSEC) / IP / UDP 10.0.0.1:1000 > 10.0.0.2:2000'
"""

# scapy.contrib.description = IP Delivery Delay Detection Protocol (IP-D3P)
# scapy.contrib.status = loads

import datetime
import socket
import struct
import time

from scapy.config import conf
from scapy.fields import ByteEnumField, ByteField, LongField, StrLenField
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, bind_layers, split_layers

from scapy_gdoi._consts import (D3P_HEADER_LEN, D3P_HEADER_LEN_UNITS, D3P_IP_PROTO,
                                D3P_TIMESTAMP_TYPES, D3P_TS_POSIX_TIME_MSEC)

__all__ = ["D3P", "D3PTimestampField", "bind_d3p_ip_proto", "d3p_ip_proto", "d3p_now_ms",
           "d3p_stamp"]

#: Header Length counts 4-octet words (DECISIONS.md §3).
_WORD = 4
#: The largest extension a one-octet Header Length can announce.
_MAX_EXTENSION = (255 - D3P_HEADER_LEN_UNITS) * _WORD
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_LAST_DATETIME_MS = int((datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
                         - _EPOCH).total_seconds() * 1000)


def d3p_now_ms():
    """The current POSIX time in milliseconds, as a D3P POSIX-TIME-MSEC timestamp."""
    return time.time_ns() // 1_000_000


def format_posix_ms(timestamp_ms):
    """ISO-8601 UTC text for a POSIX-TIME-MSEC value, e.g. '2025-12-04T20:13:20.000Z'.

    Values past the year 9999 cannot be shown as a date and say so.
    """
    if not 0 <= timestamp_ms <= _LAST_DATETIME_MS:
        return "beyond year 9999"
    when = _EPOCH + datetime.timedelta(milliseconds=timestamp_ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)


class D3PTimestampField(LongField):
    """Unsigned 64-bit big-endian timestamp shown as the number and its UTC time.

    The value stays an exact integer of milliseconds (no float seconds); the UTC
    rendering is only added for Timestamp Type POSIX-TIME-MSEC.
    """

    def i2repr(self, pkt, x):
        if x is None:
            return "None"
        if pkt is not None and getattr(pkt, "tsType", None) != D3P_TS_POSIX_TIME_MSEC:
            return str(x)
        return "%d (%s)" % (x, format_posix_ms(x))


class D3P(Packet):
    """IP-D3P header (DECISIONS.md §3); ``len`` is filled in on build when None."""

    name = "IP-D3P"
    fields_desc = [
        ByteEnumField("nh", socket.IPPROTO_IPIP, {socket.IPPROTO_IPIP: "IPv4",
                                                  socket.IPPROTO_IPV6: "IPv6",
                                                  socket.IPPROTO_TCP: "TCP",
                                                  socket.IPPROTO_UDP: "UDP"}),
        ByteField("len", None),
        ByteEnumField("tsType", D3P_TS_POSIX_TIME_MSEC, D3P_TIMESTAMP_TYPES),
        ByteField("reserved", 0),
        D3PTimestampField("timestamp", 0),
        # Extra words announced by a Header Length above 3, kept opaque.
        StrLenField("extension", b"",
                    length_from=lambda pkt: max((pkt.len or D3P_HEADER_LEN_UNITS)
                                                - D3P_HEADER_LEN_UNITS, 0) * _WORD),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        # Fewer octets than the fixed header cannot be a D3P header (DECISIONS.md
        # §3: truncated = malformed): show them as Raw instead of failing.
        if _pkt is not None and len(_pkt) < D3P_HEADER_LEN:
            return conf.raw_layer
        return cls

    def self_build(self):
        if self.len is None and len(self.extension or b"") > _MAX_EXTENSION:
            raise ValueError("a D3P extension holds at most %d octets (Header Length is "
                             "one octet of 4-octet words), not %d"
                             % (_MAX_EXTENSION, len(self.extension)))
        return super().self_build()

    def post_build(self, pkt, pay):
        if self.len is None:
            # Pad an odd-sized extension so Header Length (in words) covers it.
            pkt += b"\x00" * (-len(pkt) % _WORD)
            pkt = pkt[:1] + struct.pack("!B", len(pkt) // _WORD) + pkt[2:]
        return pkt + pay

    def mysummary(self):
        kind = D3P_TIMESTAMP_TYPES.get(self.tsType, "type %s" % self.tsType)
        text = "D3P ts=%s (%s)" % (self.timestamp, kind)
        if self.len is not None and self.len < D3P_HEADER_LEN_UNITS:
            text += " malformed hlen=%d" % self.len  # DECISIONS.md §3
        return text

    def _do_summary(self):
        # Scapy shows only the innermost layer that has a summary (UDP ports...);
        # a D3P line is wanted whatever it carries, since its timestamp is the
        # reason to look at the packet.
        _found, inner, needed = self.payload._do_summary()
        own = self.mysummary()
        return 1, ("%s / %s" % (own, inner)) if inner else own, needed

    def hashret(self):
        # D3P is a shim: requests and answers pair up by what it carries.
        return self.payload.hashret()

    def answers(self, other):
        if isinstance(other, D3P):
            return self.payload.answers(other.payload)
        return self.payload.answers(other)


def d3p_stamp(pkt, now_ms=None):
    """Return a copy of *pkt* stamped with *now_ms* (default: the current POSIX ms).

    A packet that already has a D3P header gets its timestamp set. Otherwise a D3P
    header is inserted right after the first IPv4/IPv6 header, the way a sending
    group member does (``gdoi d3p stamp``): the IP protocol / next header moves into
    D3P Next Header and the IP header names D3P; lengths and checksums are
    recomputed.

    :raises ValueError: when *pkt* has neither a D3P nor an IP/IPv6 layer
    """
    stamp = d3p_now_ms() if now_ms is None else now_ms
    if D3P in pkt:
        stamped = pkt.copy()
        stamped[D3P].timestamp = stamp
        return stamped
    for ip_class, proto_field, length_fields in ((IP, "proto", ("len", "chksum")),
                                                 (IPv6, "nh", ("plen",))):
        if ip_class in pkt:
            stamped = pkt.copy()
            ip = stamped[ip_class]
            inner_proto = getattr(ip, proto_field)  # read before the payload goes
            inner = ip.payload
            ip.remove_payload()
            ip.add_payload(D3P(nh=inner_proto, timestamp=stamp) / inner)
            setattr(ip, proto_field, _ip_proto)
            for name in length_fields:
                ip.delfieldval(name)
            return stamped
    raise ValueError("packet has no D3P or IP layer to stamp: %s" % pkt.summary())


# -- bindings ---------------------------------------------------------------------------

_ip_proto = None


def d3p_ip_proto():
    """The IP protocol number D3P is currently bound to (default D3P_IP_PROTO = 253)."""
    return _ip_proto


def bind_d3p_ip_proto(proto=D3P_IP_PROTO):
    """Carry D3P directly over IPv4/IPv6 with IP protocol number *proto*.

    The number is a project decision (DECISIONS.md §3: IANA never assigned one),
    so it is configurable; the previous binding is removed, for dissection and build.
    """
    global _ip_proto
    if type(proto) is not int:
        raise ValueError("an IP protocol number is an int 0..255, got %r" % (proto,))
    if not 0 <= proto <= 255:
        raise ValueError("an IP protocol number is 0..255, got %r" % (proto,))
    if _ip_proto is not None:
        split_layers(IP, D3P, proto=_ip_proto)
        split_layers(IPv6, D3P, nh=_ip_proto)
    bind_layers(IP, D3P, proto=proto)
    bind_layers(IPv6, D3P, nh=proto)
    _ip_proto = proto


bind_d3p_ip_proto(D3P_IP_PROTO)
# What D3P carries: the inner packet of the ESP tunnel (4, 41), or a transport
# header when it rides directly over IP.
bind_layers(D3P, IP, nh=socket.IPPROTO_IPIP)
bind_layers(D3P, IPv6, nh=socket.IPPROTO_IPV6)
bind_layers(D3P, UDP, nh=socket.IPPROTO_UDP)
bind_layers(D3P, TCP, nh=socket.IPPROTO_TCP)
bind_layers(D3P, ICMP, nh=socket.IPPROTO_ICMP)
