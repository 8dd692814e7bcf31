# SPDX-License-Identifier: GPL-2.0-only
"""Stream the GDOI datagrams (UDP port 848, IPv4 and IPv6) out of a pcap / pcapng file.

Constant memory: frames are read one at a time with Scapy's RawPcapReader (which
hands pcapng files to RawPcapNgReader), and the link, IP and UDP headers are parsed
by hand so that a capture of millions of frames is never dissected by Scapy as a
whole. IP fragments are reassembled in a small bounded table.

:func:`iter_datagrams` yields :class:`Datagram` objects; a frame that carries UDP 848
but cannot be read whole (cut by the snap length, bad lengths, a fragment that never
completes) comes out with ``error`` set instead of being dropped silently.
"""
import ipaddress
import struct

from scapy_gdoi import _consts as C

# pcap LINKTYPE_* values (tcpdump.org/linktypes.html); link framing, not GDOI numbers.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_ALT = (12, 14)  # DLT_RAW on some BSDs / OpenBSD
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
IPPROTO_UDP = 17
IPV6_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44

#: Fragment sets kept waiting for their missing pieces (oldest evicted first).
MAX_PENDING_FRAGMENTS = 64


class CaptureError(Exception):
    """The capture file cannot be opened or read any further."""


class Datagram:
    """One UDP 848 payload (or the reason it could not be read) from frame `frame`."""

    __slots__ = ("frame", "time", "src", "dst", "sport", "dport", "payload", "error")

    def __init__(self, frame, time, src, dst, sport, dport, payload, error=None):
        self.frame, self.time = frame, time
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.payload, self.error = payload, error


class _FrameError(Exception):
    pass


def _link_payload(linktype, data):
    """(ethertype-or-version, network-layer bytes) for the link types we know."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, offset = struct.unpack_from("!H", data, 12)[0], 14
        while ethertype in ETHERTYPE_VLAN and len(data) >= offset + 4:
            ethertype = struct.unpack_from("!H", data, offset + 2)[0]
            offset += 4
        return ethertype, data[offset:]
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) + LINKTYPE_RAW_ALT:
        return None, data
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return None, data[4:]
    if linktype == LINKTYPE_LINUX_SLL:
        return (struct.unpack_from("!H", data, 14)[0], data[16:]) if len(data) >= 16 else None
    if linktype == LINKTYPE_LINUX_SLL2:
        return (struct.unpack_from("!H", data, 0)[0], data[20:]) if len(data) >= 20 else None
    return None


class _Reassembler:
    """Bounded IP fragment reassembly (RFC 791 / RFC 8200 §4.5)."""

    def __init__(self):
        self.pending = {}  # key -> {"parts": {offset: bytes}, "total": int|None, "frame"}

    def add(self, key, offset, more, data, frame, header=None):
        entry = self.pending.pop(key, None) or {"parts": {}, "total": None,
                                                 "frame": frame, "header": None}
        entry["parts"][offset] = data
        if offset == 0:
            entry["header"] = header
        if not more:
            entry["total"] = offset + len(data)
        self.pending[key] = entry  # re-insert: most recent last
        evicted = []
        while len(self.pending) > MAX_PENDING_FRAGMENTS:
            evicted.append(self.pending.pop(next(iter(self.pending))))
        whole = self._complete(entry)
        if whole is not None:
            del self.pending[key]
        return whole, entry["header"], evicted

    @staticmethod
    def _complete(entry):
        if entry["total"] is None:
            return None
        out, position = bytearray(), 0
        for offset in sorted(entry["parts"]):
            if offset > position:
                return None
            part = entry["parts"][offset]
            out += part[position - offset:]
            position = max(position, offset + len(part))
        return bytes(out) if position >= entry["total"] else None


def _parse_ipv4(packet, frame, reassembler):
    if len(packet) < 20:
        raise _FrameError("truncated IPv4 header")
    ihl = (packet[0] & 0x0F) * 4
    total_length = struct.unpack_from("!H", packet, 2)[0]
    if ihl < 20 or len(packet) < ihl:
        raise _FrameError("bad IPv4 header length")
    proto = packet[9]
    if proto != IPPROTO_UDP:
        return None
    src, dst = str(ipaddress.IPv4Address(packet[12:16])), str(ipaddress.IPv4Address(packet[16:20]))
    captured = len(packet)
    payload = packet[ihl:min(total_length, captured)] if total_length >= ihl else b""
    flags_frag = struct.unpack_from("!H", packet, 6)[0]
    more, offset = bool(flags_frag & 0x2000), (flags_frag & 0x1FFF) * 8
    cut = total_length > captured
    if more or offset:
        if cut:
            raise _FrameError("IPv4 fragment cut by the capture")
        key = (4, src, dst, packet[4:6])
        payload, first, evicted = reassembler.add(key, offset, more, payload, frame)
        if payload is None:
            return "pending", evicted
        return (src, dst, payload, False), evicted
    return (src, dst, payload, cut), []


def _parse_ipv6(packet, frame, reassembler):
    if len(packet) < 40:
        raise _FrameError("truncated IPv6 header")
    payload_length = struct.unpack_from("!H", packet, 4)[0]
    next_header, offset = packet[6], 40
    src = str(ipaddress.IPv6Address(packet[8:24]))
    dst = str(ipaddress.IPv6Address(packet[24:40]))
    end = 40 + payload_length
    cut = end > len(packet)
    fragment = None
    while next_header in IPV6_EXTENSION_HEADERS + (IPV6_FRAGMENT,):
        if offset + 8 > len(packet):
            raise _FrameError("truncated IPv6 extension header")
        if next_header == IPV6_FRAGMENT:
            frag_word = struct.unpack_from("!H", packet, offset + 2)[0]
            fragment = ((frag_word & 0xFFF8), bool(frag_word & 1), packet[offset + 4:offset + 8])
            next_header, offset = packet[offset], offset + 8
        else:
            next_header, offset = packet[offset], offset + 8 * (packet[offset + 1] + 1)
    if fragment is None:
        if next_header != IPPROTO_UDP:
            return None
        return (src, dst, packet[offset:min(end, len(packet))], cut), []
    if cut:
        raise _FrameError("IPv6 fragment cut by the capture")
    frag_offset, more, ident = fragment
    data = packet[offset:end]
    whole, first_next, evicted = reassembler.add((6, src, dst, ident), frag_offset, more, data,
                                                 frame, header=next_header)
    if whole is None:
        return "pending", evicted
    if first_next != IPPROTO_UDP:
        return None
    return (src, dst, whole, False), evicted


def _udp(src, dst, segment, cut):
    """(sport, dport, payload, error) of a UDP segment."""
    if len(segment) < 8:
        raise _FrameError("truncated UDP header")
    sport, dport, length = struct.unpack_from("!HHH", segment)
    if C.GDOI_UDP_PORT not in (sport, dport):
        return sport, dport, None, None
    if length < 8:
        return sport, dport, segment[8:], "bad UDP length %d" % length
    if length > len(segment):
        why = "frame truncated by the capture" if cut else "UDP length exceeds the IP payload"
        return sport, dport, segment[8:], "%s (UDP length %d, %d octets present)" % (
            why, length, len(segment))
    return sport, dport, segment[8:length], None


def datagram_of(frame, time, linktype, data, reassembler):
    """The Datagrams (0, 1 or more with evicted fragments) one frame yields."""
    link = _link_payload(linktype, data)
    if link is None:
        return []
    ethertype, packet = link
    if not packet:
        return []
    version = packet[0] >> 4
    if ethertype not in (None, ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return []
    try:
        if version == 4 and ethertype in (None, ETHERTYPE_IPV4):
            parsed = _parse_ipv4(packet, frame, reassembler)
        elif version == 6 and ethertype in (None, ETHERTYPE_IPV6):
            parsed = _parse_ipv6(packet, frame, reassembler)
        else:
            return []
        if parsed is None:
            return []
        result, evicted = parsed
        out = [Datagram(e["frame"], None, None, None, None, None, None,
                        "IP fragments never completed (reassembly table full)")
               for e in evicted]
        if result == "pending":
            return out
        src, dst, segment, cut = result
        sport, dport, payload, error = _udp(src, dst, segment, cut)
        if payload is None:
            return out
        return out + [Datagram(frame, time, src, dst, sport, dport, payload, error)]
    except _FrameError as exc:
        # Only reported when it could be ours: a broken UDP/IP frame of unknown ports.
        return [Datagram(frame, time, None, None, None, None, None, str(exc))]


def iter_datagrams(path):
    """Yield the :class:`Datagram` of every UDP 848 message in a capture, in order.

    :raises CaptureError: the file cannot be opened or is not a capture. A file cut
        in the middle of a record ends the iteration with a final error Datagram.
    """
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader
    try:
        reader = RawPcapReader(str(path))
    except (OSError, Scapy_Exception, EOFError) as exc:
        raise CaptureError("cannot read capture %s: %s" % (path, exc))
    reassembler = _Reassembler()
    frame = 0
    default_linktype = getattr(reader, "linktype", LINKTYPE_ETHERNET)
    with reader:
        records = iter(reader)
        while True:
            try:
                record = next(records)
            except (StopIteration, EOFError):
                break
            except (Scapy_Exception, struct.error, ValueError) as exc:
                yield Datagram(frame + 1, None, None, None, None, None, None,
                               "capture file unreadable after frame %d: %s" % (frame, exc))
                break
            if record is None:
                break
            frame += 1
            data, meta = record
            yield from datagram_of(frame, _timestamp(meta), getattr(
                meta, "linktype", default_linktype), data, reassembler)
    for entry in reassembler.pending.values():
        yield Datagram(entry["frame"], None, None, None, None, None, None,
                       "IP fragments never completed (end of capture)")


def _timestamp(meta):
    if hasattr(meta, "sec"):
        return meta.sec + meta.usec / 1e6
    if hasattr(meta, "tshigh"):
        return ((meta.tshigh << 32) + meta.tslow) / float(meta.tsresol)
    return None
