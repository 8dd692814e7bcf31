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
import logging
import struct

from scapy_gdoi import _consts as C

# pcap LINKTYPE_* values (tcpdump.org/linktypes.html); link framing, not GDOI numbers.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101
LINKTYPE_C_HDLC = 104
LINKTYPE_RAW_ALT = (12, 14)  # DLT_RAW on some BSDs / OpenBSD
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)
ETHERTYPE_MPLS = (0x8847, 0x8848)  # unicast, multicast (RFC 3032)
ETHERTYPE_PPPOE_SESSION = 0x8864  # RFC 2516: 6-octet PPPoE header, then a PPP protocol
#: Ethernet II types at or above this are types; below, an 802.3 length (LLC frames).
ETHERTYPE_MIN = 0x0600
#: Link protocols that never carry IP: skipped without a warning. ARP, RARP / Cisco
#: SLARP, 802.1X, slow protocols (LACP), LLDP, PTP, PPPoE discovery, CFM, loopback, CDP.
NON_IP_ETHERTYPES = frozenset((0x0806, 0x8035, 0x888E, 0x8809, 0x88CC, 0x88F7, 0x8863,
                               0x8902, 0x9000, 0x2000))

# PPP protocol numbers (RFC 1661 / IANA PPP DLL protocol numbers).
PPP_IPV4, PPP_IPV6, PPP_MPLS = 0x0021, 0x0057, 0x0281
PPP_ADDRESS_CONTROL = b"\xff\x03"  # RFC 1662 §3.1 HDLC-like framing
#: Link control and network control protocols (0x8000 and up): never IP datagrams.
PPP_CONTROL_MIN = 0x8000

MPLS_LABEL_LEN = 4
MPLS_BOTTOM_OF_STACK = 0x100  # S bit in the third octet of a label entry (RFC 3032)
CISCO_HDLC_HEADER_LEN = 4  # address, control, protocol (an Ethertype)

IPPROTO_UDP = 17
IPV6_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44
IPV4_MIN_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
UDP_HEADER_LEN = 8
#: IPv4 Total Length 0 (TCP segmentation offload captures): use the captured length.
IPV4_LENGTH_UNKNOWN = 0

#: Octets of a classic pcap record header (ts_sec, ts_usec, incl_len, orig_len).
PCAP_RECORD_HEADER_LEN = 16

#: Fragment sets kept waiting for their missing pieces (oldest evicted first).
MAX_PENDING_FRAGMENTS = 64
#: Parts one fragment set may have. A GDOI rekey is a few kB; even at the IPv4 minimum
#: MTU (576) a 65535-octet datagram needs 120 fragments, so more is an attack.
MAX_FRAGMENT_PARTS = 128
#: Largest datagram reassembled: the IPv4 Total Length / IPv6 Payload Length limit.
MAX_REASSEMBLED_OCTETS = 0xFFFF
#: Fragment sets already known not to be UDP 848, remembered so their later fragments
#: are dropped too (never reported as lost GDOI fragments).
MAX_IGNORED_FRAGMENT_SETS = 1024


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


# -- link layers ---------------------------------------------------------------------------
#
# Each returns (packet, notice): the IP packet (or None) and, for framing we cannot
# read, a one-line notice that iter_datagrams reports once per capture.

def _by_ethertype(ethertype, payload):
    if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return payload, None
    if ethertype in ETHERTYPE_MPLS:
        return _mpls(payload)
    if ethertype == ETHERTYPE_PPPOE_SESSION:
        return _ppp_protocol(payload[6:])
    if ethertype < ETHERTYPE_MIN or ethertype in NON_IP_ETHERTYPES:
        return None, None
    return None, "ethertype 0x%04x is not supported: its frames were skipped" % ethertype


def _mpls(payload):
    """The IP packet under an MPLS label stack (RFC 3032; IP version by first nibble)."""
    offset = 0
    while offset + MPLS_LABEL_LEN <= len(payload):
        (entry,) = struct.unpack_from("!I", payload, offset)
        offset += MPLS_LABEL_LEN
        if entry & MPLS_BOTTOM_OF_STACK:
            inner = payload[offset:]
            if inner and inner[0] >> 4 in (4, 6):
                return inner, None
            return None, "MPLS payload that is not IP (pseudowire?): its frames were skipped"
    return None, None


def _ppp_protocol(data):
    """(packet, notice) of a PPP frame starting at its Protocol field (RFC 1661 §2)."""
    if not data:
        return None, None
    if data[0] & 1:  # Protocol-Field-Compression: one octet (RFC 1661 §6.5)
        protocol, payload = data[0], data[1:]
    elif len(data) >= 2:
        protocol, payload = struct.unpack_from("!H", data)[0], data[2:]
    else:
        return None, None
    if protocol in (PPP_IPV4, PPP_IPV6):
        return payload, None
    if protocol == PPP_MPLS:
        return _mpls(payload)
    if protocol >= PPP_CONTROL_MIN:
        return None, None
    return None, "PPP protocol 0x%04x is not supported: its frames were skipped" % protocol


def _ppp(data):
    if data[:2] == PPP_ADDRESS_CONTROL:  # Address-and-Control-Field-Compression omits it
        data = data[2:]
    return _ppp_protocol(data)


def _ethernet(data):
    if len(data) < 14:
        return None, None
    ethertype, offset = struct.unpack_from("!H", data, 12)[0], 14
    while ethertype in ETHERTYPE_VLAN and len(data) >= offset + 4:
        ethertype = struct.unpack_from("!H", data, offset + 2)[0]
        offset += 4
    return _by_ethertype(ethertype, data[offset:])


def _cisco_hdlc(data):
    if len(data) < CISCO_HDLC_HEADER_LEN:
        return None, None
    return _by_ethertype(struct.unpack_from("!H", data, 2)[0], data[CISCO_HDLC_HEADER_LEN:])


def _linux_sll(data):
    if len(data) < 16:
        return None, None
    return _by_ethertype(struct.unpack_from("!H", data, 14)[0], data[16:])


def _linux_sll2(data):
    if len(data) < 20:
        return None, None
    return _by_ethertype(struct.unpack_from("!H", data, 0)[0], data[20:])


_LINK_LAYERS = {
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_NULL: lambda data: (data[4:], None),
    LINKTYPE_LOOP: lambda data: (data[4:], None),
    LINKTYPE_LINUX_SLL: _linux_sll,
    LINKTYPE_LINUX_SLL2: _linux_sll2,
    LINKTYPE_C_HDLC: _cisco_hdlc,
    LINKTYPE_PPP: _ppp,
    LINKTYPE_PPP_HDLC: _ppp,
}
for _raw in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) + LINKTYPE_RAW_ALT:
    _LINK_LAYERS[_raw] = lambda data: (data, None)


def _network_packet(linktype, data):
    """(IP packet or None, notice or None) of one frame."""
    parse = _LINK_LAYERS.get(linktype)
    if parse is None:
        return None, "link type %s is not supported: its frames were skipped" % linktype
    return parse(data)


# -- IP fragments --------------------------------------------------------------------------

class _FragmentSet:
    __slots__ = ("parts", "spans", "covered", "total", "frame", "ours")

    def __init__(self, frame):
        self.parts = {}  # offset -> bytes
        self.spans = []  # sorted, disjoint (start, end) of the parts
        self.covered = 0  # octets held (spans never overlap)
        self.total = None  # known once the last fragment (MF = 0) arrives
        self.frame = frame  # the first frame seen, for reports
        self.ours = None  # True / False once the first fragment shows the UDP ports


class _Reassembler:
    """Bounded IP fragment reassembly (RFC 791 / RFC 8200 §4.5).

    Constant work per fragment (at most MAX_FRAGMENT_PARTS parts, coverage counted as
    parts arrive, one join when complete) and constant memory (MAX_PENDING_FRAGMENTS
    sets of at most MAX_REASSEMBLED_OCTETS). Overlapping fragments drop their set
    (RFC 5722; exact duplicates are ignored). `is_ours(first_part)` tells from the
    first fragment whether the set is UDP 848; sets that are not are dropped at once.
    Lost or dropped sets come back as (frame, reason) only when known to be UDP 848;
    the others are counted in `unknown_lost` (their ports were never seen).
    """

    def __init__(self, is_ours=None):
        from scapy_gdoi.bounded import BoundedLRU
        self.pending = {}  # key -> _FragmentSet, oldest first
        self.ignored = BoundedLRU(MAX_IGNORED_FRAGMENT_SETS)
        self.is_ours = is_ours or _udp_848
        self.unknown_lost = 0

    def add(self, key, offset, more, data, frame):
        """(whole datagram or None, [(frame, reason) of sets given up])."""
        if key in self.ignored:
            return None, []
        lost = []
        entry = self.pending.pop(key, None)
        if entry is None:
            entry = _FragmentSet(frame)
            while len(self.pending) >= MAX_PENDING_FRAGMENTS:
                oldest = next(iter(self.pending))
                self._give_up(self.pending.pop(oldest), "IP fragments never completed "
                              "(reassembly table full)", lost)
        problem = self._insert(entry, offset, more, data)
        if entry.ours is False:
            self.ignored[key] = True
            return None, lost
        if problem:
            self.ignored[key] = True  # its remaining fragments are dropped too
            self._give_up(entry, "IP fragments dropped: " + problem, lost)
            return None, lost
        if entry.total is not None and entry.covered == entry.total:
            return b"".join(entry.parts[o] for o in sorted(entry.parts)), lost
        self.pending[key] = entry  # re-insert: most recent last
        return None, lost

    def _insert(self, entry, offset, more, data):
        """Add one part; the reason to drop the set, or None."""
        import bisect
        end = offset + len(data)
        if offset == 0:
            entry.ours = self.is_ours(data)
            if not entry.ours:
                return None
        if entry.parts.get(offset) == data and (more or entry.total == end):
            return None  # an exact duplicate (captured twice)
        if end > MAX_REASSEMBLED_OCTETS:
            return "the datagram would exceed %d octets" % MAX_REASSEMBLED_OCTETS
        if len(entry.parts) >= MAX_FRAGMENT_PARTS:
            return "more than %d fragments" % MAX_FRAGMENT_PARTS
        if not more:
            if entry.total is not None and entry.total != end:
                return "two last fragments disagree on the length"
            entry.total = end
        if entry.total is not None and (end > entry.total or
                                        (entry.spans and entry.spans[-1][1] > entry.total)):
            return "a fragment runs past the last fragment"
        index = bisect.bisect_left(entry.spans, (offset, end))
        if ((index and entry.spans[index - 1][1] > offset)
                or (index < len(entry.spans) and entry.spans[index][0] < end)):
            return "overlapping fragments (RFC 5722)"
        if data:
            entry.spans.insert(index, (offset, end))
            entry.parts[offset] = data
            entry.covered += len(data)
        return None

    def _give_up(self, entry, reason, lost):
        if entry.ours:
            lost.append((entry.frame, reason))
        elif entry.ours is None:
            self.unknown_lost += 1

    def finish(self):
        """[(frame, reason)] of the sets still incomplete at the end of the capture."""
        lost = []
        for entry in self.pending.values():
            self._give_up(entry, "IP fragments never completed (end of capture)", lost)
        self.pending.clear()
        return lost


def _udp_848(first_part):
    """Whether the first fragment's UDP header names port 848 (fragments hold UDP only)."""
    if len(first_part) < 4:
        return True  # too short to tell: keep it, a later check reports it
    sport, dport = struct.unpack_from("!HH", first_part)
    return C.GDOI_UDP_PORT in (sport, dport)


def _parse_ipv4(packet, frame, reassembler):
    """((src, dst, UDP segment, cut) | "pending" | None, [(frame, reason) lost])."""
    if len(packet) < IPV4_MIN_HEADER_LEN:
        raise _FrameError("truncated IPv4 header")
    ihl = (packet[0] & 0x0F) * 4
    total_length = struct.unpack_from("!H", packet, 2)[0]
    if ihl < IPV4_MIN_HEADER_LEN or len(packet) < ihl:
        raise _FrameError("bad IPv4 header length")
    proto = packet[9]
    if proto != IPPROTO_UDP:
        return None, []
    src, dst = str(ipaddress.IPv4Address(packet[12:16])), str(ipaddress.IPv4Address(packet[16:20]))
    captured = len(packet)
    if total_length == IPV4_LENGTH_UNKNOWN:
        # Captured before TCP segmentation offload / checksum offload filled it in:
        # the frame holds the whole packet (trailing Ethernet padding stays; the UDP
        # Length bounds the payload).
        total_length = captured
    payload = packet[ihl:min(total_length, captured)] if total_length >= ihl else b""
    flags_frag = struct.unpack_from("!H", packet, 6)[0]
    more, offset = bool(flags_frag & 0x2000), (flags_frag & 0x1FFF) * 8
    cut = total_length > captured
    if more or offset:
        if cut:
            raise _FrameError("IPv4 fragment cut by the capture")
        key = (4, src, dst, packet[4:6], proto)
        whole, lost = reassembler.add(key, offset, more, payload, frame)
        if whole is None:
            return "pending", lost
        return (src, dst, whole, False), lost
    return (src, dst, payload, cut), []


def _parse_ipv6(packet, frame, reassembler):
    """As :func:`_parse_ipv4`, for IPv6 (extension headers and Fragment header)."""
    if len(packet) < IPV6_HEADER_LEN:
        raise _FrameError("truncated IPv6 header")
    payload_length = struct.unpack_from("!H", packet, 4)[0]
    next_header, offset = packet[6], IPV6_HEADER_LEN
    src = str(ipaddress.IPv6Address(packet[8:24]))
    dst = str(ipaddress.IPv6Address(packet[24:40]))
    end = IPV6_HEADER_LEN + payload_length
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
    if next_header != IPPROTO_UDP:
        # Every fragment's Fragment header names the same next header (RFC 8200 §4.5),
        # so a fragment of anything but UDP is dropped without being kept.
        return None, []
    if fragment is None:
        return (src, dst, packet[offset:min(end, len(packet))], cut), []
    if cut:
        raise _FrameError("IPv6 fragment cut by the capture")
    frag_offset, more, ident = fragment
    whole, lost = reassembler.add((6, src, dst, ident), frag_offset, more,
                                  packet[offset:end], frame)
    if whole is None:
        return "pending", lost
    return (src, dst, whole, False), lost


def _udp(src, dst, segment, cut):
    """(sport, dport, payload, error) of a UDP segment."""
    if len(segment) < UDP_HEADER_LEN:
        raise _FrameError("truncated UDP header")
    sport, dport, length = struct.unpack_from("!HHH", segment)
    if C.GDOI_UDP_PORT not in (sport, dport):
        return sport, dport, None, None
    if length < UDP_HEADER_LEN:
        return sport, dport, segment[UDP_HEADER_LEN:], "bad UDP length %d" % length
    if length > len(segment):
        why = "frame truncated by the capture" if cut else "UDP length exceeds the IP payload"
        return sport, dport, segment[UDP_HEADER_LEN:], "%s (UDP length %d, %d octets present)" % (
            why, length, len(segment))
    return sport, dport, segment[UDP_HEADER_LEN:length], None


def _lost_datagrams(lost):
    return [Datagram(frame, None, None, None, None, None, None, reason)
            for frame, reason in lost]


def datagram_of(frame, time, linktype, data, reassembler, notices=None):
    """The Datagrams (0, 1 or more with lost fragment sets) one frame yields.

    `notices` (a :class:`CaptureNotices`) hears about framing that cannot be read.
    """
    packet, notice = _network_packet(linktype, data)
    if notice and notices is not None:
        notices.add(notice)
    if not packet:
        return []
    version = packet[0] >> 4
    try:
        if version == 4:
            parsed = _parse_ipv4(packet, frame, reassembler)
        elif version == 6:
            parsed = _parse_ipv6(packet, frame, reassembler)
        else:
            return []
        result, lost = parsed
        out = _lost_datagrams(lost)
        if result is None or result == "pending":
            return out
        src, dst, segment, cut = result
        sport, dport, payload, error = _udp(src, dst, segment, cut)
        if payload is None:
            return out
        return out + [Datagram(frame, time, src, dst, sport, dport, payload, error)]
    except _FrameError as exc:
        # Only reported when it could be ours: a broken UDP/IP frame of unknown ports.
        return [Datagram(frame, time, None, None, None, None, None, str(exc))]


class CaptureNotices:
    """Capture-level notices (unsupported framing...), each kept once, in order.

    `on_notice(text)` is called the first time each one appears (the CLI prints it to
    stderr at once); :attr:`messages` holds them all for a closing summary.
    """

    def __init__(self, on_notice=None):
        self.messages = []
        self._seen = set()
        self.on_notice = on_notice

    def add(self, text):
        if text in self._seen:
            return
        self._seen.add(text)
        self.messages.append(text)
        if self.on_notice is not None:
            self.on_notice(text)


def iter_datagrams(path, notices=None):
    """Yield the :class:`Datagram` of every UDP 848 message in a capture, in order.

    :param notices: a :class:`CaptureNotices` told once per unsupported link type,
        ethertype or PPP protocol (their frames are skipped), and about fragment sets
        lost before their ports were seen.
    :raises CaptureError: the file cannot be opened or is not a capture. A file cut in
        the middle of a record (pcap record header or data, pcapng block) ends the
        iteration with a final error Datagram.
    """
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader
    try:
        reader = RawPcapReader(str(path))
    except (OSError, Scapy_Exception, EOFError) as exc:
        raise CaptureError("cannot read capture %s: %s" % (path, exc))
    quiet = _DropScapyTruncationWarning()
    scapy_log = logging.getLogger(SCAPY_RUNTIME_LOGGER)
    scapy_log.addFilter(quiet)
    try:
        yield from _iter_reader(reader, notices)
    finally:
        scapy_log.removeFilter(quiet)


#: Scapy's runtime logger, and its warning for a record cut short (scapy.utils).
SCAPY_RUNTIME_LOGGER = "scapy.runtime"
SCAPY_TRUNCATION_WARNING = "Pcap: packet has been truncated"


class _DropScapyTruncationWarning(logging.Filter):
    """Drops Scapy's bare truncation warning while we read: the cut is reported on the
    frame it affects ("capture file cut inside frame N ..."), with the numbers."""

    def filter(self, record):
        return record.getMessage() != SCAPY_TRUNCATION_WARNING


def _iter_reader(reader, notices):
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader
    reassembler = _Reassembler()
    frame = 0
    default_linktype = getattr(reader, "linktype", LINKTYPE_ETHERNET)
    classic = not isinstance(reader, RawPcapNgReader)
    with reader:
        records = iter(reader)
        while True:
            position = _tell(reader)
            try:
                record = next(records)
            except (StopIteration, EOFError):
                if (_tell(reader) not in (position, None) if classic
                        else _pcapng_tail_is_cut(reader, position)):
                    yield Datagram(frame + 1, None, None, None, None, None, None,
                                   "capture file cut inside the %s after frame %d" % (
                                       "record header" if classic else "block", frame))
                break
            except (Scapy_Exception, struct.error, ValueError) as exc:
                yield Datagram(frame + 1, None, None, None, None, None, None,
                               "capture file unreadable after frame %d: %s" % (frame, exc))
                break
            if record is None:
                break
            frame += 1
            data, meta = record
            out = datagram_of(frame, _timestamp(meta), getattr(
                meta, "linktype", default_linktype), data, reassembler, notices)
            caplen = getattr(meta, "caplen", None)
            if classic and caplen is not None and _tell(reader) - position < (
                    PCAP_RECORD_HEADER_LEN + caplen):
                # The file ends inside this record: the last entry says so, on the
                # frame's own datagram when it has one.
                cut = "capture file cut inside frame %d: record says %d octets, %d present" % (
                    frame, caplen, _tell(reader) - position - PCAP_RECORD_HEADER_LEN)
                own = [d for d in out if d.frame == frame]
                if own:
                    own[-1].error = "; ".join(e for e in (own[-1].error, cut) if e)
                else:
                    out.append(Datagram(frame, None, None, None, None, None, None, cut))
                yield from out
                break
            yield from out
    yield from _lost_datagrams(reassembler.finish())
    if reassembler.unknown_lost and notices is not None:
        notices.add("%d incomplete UDP fragment set(s) whose first fragment (with the "
                    "ports) was never seen were dropped" % reassembler.unknown_lost)


#: pcapng block: Block Type (4), Block Total Length (4), ..., Block Total Length (4).
PCAPNG_MIN_BLOCK_LEN = 12


def _pcapng_tail_is_cut(reader, position):
    """Whether the pcapng bytes after `position` (where the last read began) hold a
    block that does not end inside the file (the reader ends quietly on one)."""
    try:
        reader.f.seek(position)
        tail = reader.f.read()
        endian = reader.endian
    except (AttributeError, OSError, ValueError):
        return False
    offset = 0
    while offset < len(tail):
        if len(tail) - offset < PCAPNG_MIN_BLOCK_LEN:
            return True
        (length,) = struct.unpack_from(endian + "I", tail, offset + 4)
        if length < PCAPNG_MIN_BLOCK_LEN or offset + length > len(tail):
            return True
        offset += length
    return False


def _tell(reader):
    try:
        return reader.f.tell()
    except (AttributeError, OSError, ValueError):
        return None


def _timestamp(meta):
    if hasattr(meta, "sec"):
        return meta.sec + meta.usec / 1e6
    if hasattr(meta, "tshigh"):
        return ((meta.tshigh << 32) + meta.tslow) / float(meta.tsresol)
    return None
