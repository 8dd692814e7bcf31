# SPDX-License-Identifier: GPL-2.0-only
"""Sans-io parts of the NFQUEUE enforcer, no socket and no root needed.

- nfq_msg.c: netlink builders compared byte for byte with messages assembled
  here field by field from the kernel uapi (<linux/netlink.h>,
  <linux/netfilter/nfnetlink.h>, <linux/netfilter/nfnetlink_queue.h>);
  the parser fed hand-assembled kernel messages, broken ones included.
- nfq_packet.c: strip / stamp checked against packets Scapy builds (an
  independent implementation of the IP header, lengths and checksums).
- nfq_verdict.c: the batcher's output decoded and replayed against the
  kernel's batch-verdict rule: every packet gets exactly one verdict, the
  one asked for.
"""
import random
import struct

import pytest

from scapy_gdoi import _consts

_mod = pytest.importorskip("d3p_fast._d3p_fast", reason="C extension not built")
ffi, lib = _mod.ffi, _mod.lib

from scapy.all import IP, IPv6, UDP, IPOption  # noqa: E402

# --- uapi numbers, written out here on purpose (the tests are the oracle) ---
NFNL_SUBSYS_QUEUE = 3                 # nfnetlink.h
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4   # netlink.h
NLMSG_ERROR = 2
NLA_F_NET_BYTEORDER = 0x4000
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_MARK, NFQA_TIMESTAMP = 1, 2, 3, 4
NFQA_PAYLOAD, NFQA_CAP_LEN, NFQA_SKB_INFO = 10, 13, 14
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 1 << 0, 1 << 2
NF_DROP, NF_ACCEPT = 0, 1
D3P = _consts.D3P_IP_PROTO


def nlmsghdr(length, op, flags, seq=0, pid=0):
    # struct nlmsghdr is host order; type = subsystem << 8 | operation
    return struct.pack("=IHHII", length, (NFNL_SUBSYS_QUEUE << 8) | op, flags, seq, pid)


def nfgenmsg(queue, family=0):
    return bytes([family, 0]) + struct.pack("!H", queue)  # AF_UNSPEC, NFNETLINK_V0, res_id BE


def attr(atype, value):
    raw = struct.pack("=HH", 4 + len(value), atype) + value
    return raw + b"\0" * (-len(raw) % 4)


def message(op, flags, queue, attrs, seq=0):
    body = nfgenmsg(queue) + b"".join(attrs)
    return nlmsghdr(16 + len(body), op, flags, seq) + body


def call_builder(fn, *args, cap=4096):
    buf = ffi.new("uint8_t[]", cap)
    n = fn(buf, cap, *args)
    return bytes(ffi.buffer(buf, n))


# --- builders ---------------------------------------------------------------

def test_cfg_cmd_unbind_matches_uapi_layout():
    expected = message(NFQNL_MSG_CONFIG, NLM_F_REQUEST, 3,
                       [attr(NFQA_CFG_CMD, bytes([NFQNL_CFG_CMD_UNBIND, 0]) + b"\0\0")], seq=7)
    assert call_builder(lib.nfq_build_cfg_cmd, 7, 3, NFQNL_CFG_CMD_UNBIND, 0) == expected


def test_cfg_cmd_with_ack_sets_nlm_f_ack():
    got = call_builder(lib.nfq_build_cfg_cmd, 1, 0, NFQNL_CFG_CMD_BIND, 1)
    assert struct.unpack_from("=H", got, 6)[0] == NLM_F_REQUEST | NLM_F_ACK


def test_cfg_bind_carries_params_maxlen_flags_and_mask():
    flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
    expected = message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 5, [
        attr(NFQA_CFG_CMD, bytes([NFQNL_CFG_CMD_BIND, 0, 0, 0])),
        # struct nfqnl_msg_config_params is packed: be32 copy_range, u8 mode (5 octets)
        attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xffff, NFQNL_COPY_PACKET)),
        attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 4096)),
        attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
        attr(NFQA_CFG_MASK, struct.pack("!I", flags)),
    ], seq=1)
    got = call_builder(lib.nfq_build_cfg_bind, 1, 5, NFQNL_COPY_PACKET, 0xffff, 4096,
                       NFQA_CFG_F_FAIL_OPEN, flags)
    assert got == expected
    assert len(got) == 64


def test_cfg_bind_without_maxlen_leaves_the_attribute_out():
    got = call_builder(lib.nfq_build_cfg_bind, 1, 5, NFQNL_COPY_PACKET, 128, 0, 0, 0)
    expected = message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, 5, [
        attr(NFQA_CFG_CMD, bytes([NFQNL_CFG_CMD_BIND, 0, 0, 0])),
        attr(NFQA_CFG_PARAMS, struct.pack("!IB", 128, NFQNL_COPY_PACKET)),
        attr(NFQA_CFG_FLAGS, struct.pack("!I", 0)),
        attr(NFQA_CFG_MASK, struct.pack("!I", 0)),
    ], seq=1)
    assert got == expected


def test_verdict_with_payload_pads_to_four_octets():
    expected = message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 2, [
        attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, 0x01020304)),
        attr(NFQA_PAYLOAD, b"abcde"),
    ])
    got = call_builder(lib.nfq_build_verdict, 2, NF_ACCEPT, 0x01020304, b"abcde", 5)
    assert got == expected and len(got) == 44


def test_verdict_without_payload_and_batch_verdict():
    plain = call_builder(lib.nfq_build_verdict, 9, NF_DROP, 77, ffi.NULL, 0)
    assert plain == message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 9,
                            [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_DROP, 77))])
    batch = call_builder(lib.nfq_build_verdict_batch, 9, NF_ACCEPT, 0xfffffffe)
    assert batch == message(NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, 9,
                            [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, 0xfffffffe))])


@pytest.mark.parametrize("cap", [0, 19, 27, 43])
def test_builders_refuse_short_buffers(cap):
    buf = ffi.new("uint8_t[]", 64)
    assert lib.nfq_build_verdict(buf, cap, 0, NF_ACCEPT, 1, b"abcde", 5) == 0
    if cap < 28:
        assert lib.nfq_build_cfg_cmd(buf, cap, 1, 0, NFQNL_CFG_CMD_BIND, 0) == 0


def test_payload_too_long_for_an_attribute_is_refused():
    big = b"\0" * 0x10000
    buf = ffi.new("uint8_t[]", 0x10100)
    assert lib.nfq_build_verdict(buf, len(buf), 0, NF_ACCEPT, 1, big, len(big)) == 0


# --- parsers ----------------------------------------------------------------

def packet_message(queue=7, packet_id=0x11223344, attrs_after=(), hdr=True, payload=b"P" * 5):
    attrs = []
    if hdr:
        # struct nfqnl_msg_packet_hdr is packed: be32 id, be16 hw_protocol, u8 hook
        attrs.append(attr(NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 1)))
    attrs.extend(attrs_after)
    if payload is not None:
        attrs.append(attr(NFQA_PAYLOAD, payload))
    return message(NFQNL_MSG_PACKET, 0, queue, attrs)


def parse(raw):
    out = ffi.new("struct nfq_packet *")
    buf = ffi.from_buffer(raw)
    rc = lib.nfq_parse_packet(buf, len(raw), out)
    payload = bytes(ffi.buffer(out.payload, out.payload_len)) if out.payload != ffi.NULL else None
    return rc, out, payload


def test_parse_packet_reads_every_attribute_and_skips_unknown_ones():
    raw = packet_message(attrs_after=[
        attr(NFQA_TIMESTAMP, struct.pack("!QQ", 1700000000, 123456)),
        attr(99, b"xyz"),                                    # unknown, odd length
        attr(NFQA_MARK | NLA_F_NET_BYTEORDER, struct.pack("!I", 0xabcd)),
        attr(NFQA_CAP_LEN, struct.pack("!I", 1500)),
        attr(NFQA_SKB_INFO, struct.pack("!I", 2)),
    ], payload=b"hello")
    rc, p, payload = parse(raw)
    assert rc == lib.NFQ_PARSE_OK
    assert (p.packet_id, p.hw_protocol, p.hook, p.queue_num) == (0x11223344, 0x0800, 1, 7)
    assert p.has_timestamp and p.timestamp_ms == 1700000000 * 1000 + 123
    assert (p.mark, p.skb_info, p.packet_len, p.payload_len) == (0xabcd, 2, 1500, 5)
    assert payload == b"hello"


def test_parse_packet_without_cap_len_reports_the_payload_length():
    rc, p, _ = parse(packet_message(payload=b"x" * 33))
    assert rc == lib.NFQ_PARSE_OK and p.packet_len == 33 and not p.has_timestamp


def test_parse_packet_without_payload():
    rc, p, payload = parse(packet_message(payload=None))
    assert rc == lib.NFQ_PARSE_OK and payload is None and p.payload_len == 0


def test_wrong_size_timestamp_is_rejected_but_the_id_is_kept():
    raw = packet_message(attrs_after=[attr(NFQA_TIMESTAMP, b"\0" * 8)])
    rc, p, _ = parse(raw)
    assert rc == lib.NFQ_PARSE_BAD_ATTR
    assert p.has_packet_id and p.packet_id == 0x11223344


def test_wrong_size_packet_header_is_rejected():
    raw = message(NFQNL_MSG_PACKET, 0, 0, [attr(NFQA_PACKET_HDR, b"\0" * 6)])
    rc, p, _ = parse(raw)
    assert rc == lib.NFQ_PARSE_BAD_ATTR and not p.has_packet_id


def test_missing_packet_header():
    rc, p, _ = parse(packet_message(hdr=False))
    assert rc == lib.NFQ_PARSE_NO_PACKET_HDR


def test_attribute_running_past_the_message():
    raw = bytearray(packet_message(payload=b"abcd"))
    struct.pack_into("=H", raw, len(raw) - 8, 200)  # payload attribute claims 200 octets
    rc, _, _ = parse(bytes(raw))
    assert rc == lib.NFQ_PARSE_TRUNCATED


def test_message_shorter_than_its_length_field():
    raw = packet_message()
    rc, _, _ = parse(raw[:-4])
    assert rc == lib.NFQ_PARSE_TRUNCATED
    rc, _, _ = parse(raw[:10])
    assert rc == lib.NFQ_PARSE_TRUNCATED


def test_other_message_type_is_not_a_packet():
    raw = message(NFQNL_MSG_CONFIG, 0, 0, [])
    assert parse(raw)[0] == lib.NFQ_PARSE_NOT_PACKET


def test_next_message_walks_aligned_messages_and_stops_on_a_bad_length():
    first = packet_message(payload=b"ab")  # 16+4+12+8 = 40... plus padding
    second = packet_message(packet_id=5, payload=b"abc")
    datagram = first + second
    buf = ffi.from_buffer(datagram)
    msg_len = ffi.new("size_t *")
    nxt = lib.nfq_next_message(buf, len(datagram), 0, msg_len)
    assert (nxt, msg_len[0]) == (len(first), len(first))
    end = lib.nfq_next_message(buf, len(datagram), nxt, msg_len)
    assert (end, msg_len[0]) == (len(datagram), len(second))
    lib.nfq_next_message(buf, len(datagram), end, msg_len)
    assert msg_len[0] == 0
    broken = bytearray(datagram)
    struct.pack_into("=I", broken, 0, 10)  # shorter than a netlink header
    lib.nfq_next_message(ffi.from_buffer(broken), len(broken), 0, msg_len)
    assert msg_len[0] == 0


def test_parse_error_answer():
    request = nlmsghdr(28, NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq=9)
    raw = struct.pack("=IHHII", 16 + 4 + 16, NLMSG_ERROR, 0, 9, 0) + struct.pack("=i", -16) + request
    error, seq = ffi.new("int *"), ffi.new("uint32_t *")
    assert lib.nfq_parse_error(raw, len(raw), error, seq) == lib.NFQ_PARSE_OK
    assert (error[0], seq[0]) == (-16, 9)
    assert lib.nfq_parse_error(raw, 20, error, seq) == lib.NFQ_PARSE_TRUNCATED
    assert lib.nfq_parse_error(packet_message(), 40, error, seq) == lib.NFQ_PARSE_NOT_PACKET


# --- strip / stamp ------------------------------------------------------------

def d3p_header(next_header, timestamp_ms, words=3, ts_type=_consts.D3P_TS_POSIX_TIME_MSEC):
    return struct.pack("!BBBBQ", next_header, words, ts_type, 0, timestamp_ms) + b"\0" * (4 * (words - 3))


def udp4(payload=b"datagram", options=None):
    kw = {"options": options} if options else {}
    return bytes(IP(src="192.0.2.1", dst="192.0.2.2", id=7, **kw) / UDP(sport=4000, dport=5000) / payload)


def d3p4(inner, timestamp_ms, words=3, options=None):
    """The D3P-over-IP form of an IPv4 packet, built by Scapy."""
    kw = {"options": options} if options else {}
    ihl = (inner[0] & 0xf) * 4
    return bytes(IP(src="192.0.2.1", dst="192.0.2.2", id=7, proto=D3P, **kw)
                 / (d3p_header(inner[9], timestamp_ms, words) + inner[ihl:]))


def udp6(payload=b"datagram6"):
    return bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=4000, dport=5000) / payload)


def d3p6(inner, timestamp_ms):
    return bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", nh=D3P)
                 / (d3p_header(inner[6], timestamp_ms) + inner[40:]))


def strip(raw):
    buf = ffi.new("uint8_t[]", raw)
    start, new_len = ffi.new("size_t *"), ffi.new("size_t *")
    offset = ffi.new("size_t *")
    rc = lib.nfq_d3p_offset(buf, len(raw), D3P, offset)
    if rc != lib.NFQ_PKT_OK:
        return rc, None
    rc = lib.nfq_strip_d3p(buf, len(raw), offset[0], start, new_len)
    if rc != lib.NFQ_PKT_OK:
        return rc, None
    return rc, bytes(ffi.buffer(buf + start[0], new_len[0]))


def stamp(raw, now_ms, cap=None):
    cap = len(raw) + 12 if cap is None else cap
    out, out_len = ffi.new("uint8_t[]", max(cap, 1)), ffi.new("size_t *")
    rc = lib.nfq_stamp_d3p(raw, len(raw), D3P, now_ms, out, cap, out_len)
    return rc, (bytes(ffi.buffer(out, out_len[0])) if rc == lib.NFQ_PKT_OK else None)


@pytest.mark.parametrize("inner_builder,wrap", [
    (lambda: udp4(), lambda inner, ts: d3p4(inner, ts)),
    (lambda: udp4(options=IPOption(b"\x94\x04\x00\x00")),
     lambda inner, ts: d3p4(inner, ts, options=IPOption(b"\x94\x04\x00\x00"))),
    (lambda: udp6(), lambda inner, ts: d3p6(inner, ts)),
], ids=["ipv4", "ipv4-options", "ipv6"])
def test_strip_and_stamp_are_inverse_and_match_scapy(inner_builder, wrap):
    inner = inner_builder()
    wrapped = wrap(inner, 1_700_000_000_123)
    rc, stripped = strip(wrapped)
    assert rc == lib.NFQ_PKT_OK and stripped == inner
    rc, stamped = stamp(inner, 1_700_000_000_123)
    assert rc == lib.NFQ_PKT_OK and stamped == wrapped


def test_strip_skips_a_longer_d3p_header():
    inner = udp4()
    rc, stripped = strip(d3p4(inner, 5, words=5))
    assert rc == lib.NFQ_PKT_OK and stripped == inner


def test_strip_drops_link_layer_padding():
    inner = udp4(b"x")
    rc, stripped = strip(d3p4(inner, 5) + b"\0" * 6)
    assert stripped == inner


@pytest.mark.parametrize("raw,expected", [
    (b"", "NFQ_PKT_TRUNCATED"),
    (b"\x45" + b"\0" * 10, "NFQ_PKT_TRUNCATED"),
    (b"\x55" + b"\0" * 30, "NFQ_PKT_NOT_IP"),          # version 5
    (b"\x44" + b"\0" * 30, "NFQ_PKT_NOT_IP"),          # IHL 4 words < 20 octets
    (bytes(IP(proto=17) / (b"x" * 20)), "NFQ_PKT_NOT_D3P"),
    (bytes(IP(proto=D3P, flags="MF") / (b"\0" * 20)), "NFQ_PKT_FRAGMENT"),
    (bytes(IP(proto=D3P, frag=3) / (b"\0" * 20)), "NFQ_PKT_FRAGMENT"),
    (bytes(IPv6(nh=D3P, plen=0) / (b"\0" * 20)), "NFQ_PKT_NOT_IP"),   # jumbogram
])
def test_d3p_offset_refuses_what_is_not_d3p_over_ip(raw, expected):
    offset = ffi.new("size_t *")
    assert lib.nfq_d3p_offset(raw, len(raw), D3P, offset) == getattr(lib, expected)


def test_strip_refuses_partial_packets_and_short_headers():
    wrapped = d3p4(udp4(), 5)
    assert strip(wrapped[:-3])[0] == lib.NFQ_PKT_INCOMPLETE
    short = bytes(IP(proto=D3P) / (b"\x11\x03\x01\x00" + b"\0" * 4))  # 8 of 12 octets
    assert strip(short)[0] == lib.NFQ_PKT_TRUNCATED
    overlong = bytes(IP(proto=D3P) / struct.pack("!BBBBQ", 17, 9, 1, 0, 5))  # claims 36, has 12
    assert strip(overlong)[0] == lib.NFQ_PKT_TRUNCATED


def test_stamp_refuses_oversize_partial_and_fragments():
    big = bytes(IP() / UDP() / (b"\0" * (0xffff - 28 - 5)))
    assert stamp(big, 1)[0] == lib.NFQ_PKT_TOO_BIG
    assert stamp(udp4()[:-1], 1)[0] == lib.NFQ_PKT_INCOMPLETE
    assert stamp(bytes(IP(flags="MF") / UDP()), 1)[0] == lib.NFQ_PKT_FRAGMENT
    assert stamp(udp4(), 1, cap=10)[0] == lib.NFQ_PKT_NO_ROOM


def test_ip_source():
    addr, family = ffi.new("uint8_t[16]"), ffi.new("uint8_t *")
    lib.nfq_ip_source(udp4(), 40, addr, family)
    assert family[0] == 4 and bytes(addr)[:4] == bytes([192, 0, 2, 1])
    lib.nfq_ip_source(udp6(), 60, addr, family)
    assert family[0] == 6 and bytes(addr) == bytes.fromhex("20010db8" + "0" * 22 + "01")
    lib.nfq_ip_source(b"\x45", 1, addr, family)
    assert family[0] == 0


# --- the enforcer's decision -------------------------------------------------

NOW = 1_700_000_000_000
W = 1000


def decide(raw, action, strip_it, now=NOW, packet_len=None):
    buf = ffi.new("uint8_t[]", raw)
    d = ffi.new("struct nfq_decision *")
    lib.nfq_enforce_packet(buf, len(raw), len(raw) if packet_len is None else packet_len,
                           D3P, now, W, action, strip_it, d)
    out = bytes(ffi.buffer(buf + d.start, d.len)) if d.modified else None
    return d, out


@pytest.mark.parametrize("ts,cause", [(NOW, "D3P_FRESH"), (NOW - W, "D3P_FRESH"),
                                      (NOW + W, "D3P_FRESH"), (NOW - W - 1, "D3P_TOO_OLD"),
                                      (NOW + W + 1, "D3P_TOO_NEW")])
def test_decision_follows_the_window_rule(ts, cause):
    d, _ = decide(d3p4(udp4(), ts), lib.NFQ_ACTION_DROP, 0)
    assert d.cause == getattr(lib, cause)
    assert d.verdict == (NF_ACCEPT if cause == "D3P_FRESH" else NF_DROP)
    assert d.peer_time_ms == ts and not d.modified


def test_fresh_packet_is_stripped():
    d, out = decide(d3p4(udp4(), NOW), lib.NFQ_ACTION_DROP, 1)
    assert d.verdict == NF_ACCEPT and d.modified and out == udp4()


def test_count_action_passes_stale_packets_stripped():
    d, out = decide(d3p4(udp4(), NOW - 5 * W), lib.NFQ_ACTION_COUNT, 1)
    assert d.cause == lib.D3P_TOO_OLD and d.verdict == NF_ACCEPT and out == udp4()


@pytest.mark.parametrize("action,verdict", [("NFQ_ACTION_DROP", NF_DROP),
                                            ("NFQ_ACTION_COUNT", NF_ACCEPT)])
def test_malformed_packets(action, verdict):
    bad_type = bytes(IP(proto=D3P) / d3p_header(17, NOW, ts_type=2))
    not_d3p = udp4()
    for raw in (bad_type, not_d3p, b"\x60"):
        d, out = decide(raw, getattr(lib, action), 1)
        assert d.cause == lib.D3P_MALFORMED and d.verdict == verdict and out is None
        assert d.peer_time_ms == 0


def test_partial_packet_cannot_be_stripped():
    raw = d3p4(udp4(b"z" * 100), NOW)
    d, _ = decide(raw[:80], lib.NFQ_ACTION_DROP, 1, packet_len=len(raw))
    assert d.cause == lib.D3P_FRESH and d.strip_error and d.verdict == NF_DROP
    d, _ = decide(raw[:80], lib.NFQ_ACTION_COUNT, 1, packet_len=len(raw))
    assert d.strip_error and d.verdict == NF_ACCEPT and not d.modified
    # Without strip, the headers are all the check needs.
    d, _ = decide(raw[:80], lib.NFQ_ACTION_DROP, 0, packet_len=len(raw))
    assert d.verdict == NF_ACCEPT and not d.strip_error


# --- the verdict batcher -----------------------------------------------------

def decode_verdicts(data):
    """(kind, verdict, id, payload) for each message, decoded independently."""
    out, offset = [], 0
    while offset < len(data):
        length, mtype = struct.unpack_from("=IH", data, offset)
        assert mtype >> 8 == NFNL_SUBSYS_QUEUE
        msg = data[offset:offset + length]
        pos, verdict, pid, payload = 20, None, None, None
        while pos < len(msg):
            alen, atype = struct.unpack_from("=HH", msg, pos)
            value = msg[pos + 4:pos + alen]
            if atype == NFQA_VERDICT_HDR:
                verdict, pid = struct.unpack("!II", value)
            elif atype == NFQA_PAYLOAD:
                payload = value
            pos += (alen + 3) & ~3
        kind = {NFQNL_MSG_VERDICT: "one", NFQNL_MSG_VERDICT_BATCH: "batch"}[mtype & 0xff]
        out.append((kind, verdict, pid, payload))
        offset += (length + 3) & ~3
    return out


def kernel_replay(queued, messages):
    """Apply verdict messages the way nfnetlink_queue does: one verdict takes
    its id out of the queue; a batch verdict takes every queued id <= its id
    (nfqnl_recv_verdict_batch).  Returns {id: (verdict, payload)}."""
    queue, settled = list(queued), {}
    for kind, verdict, pid, payload in messages:
        if kind == "one":
            assert pid in queue, "verdict for a packet not queued"
            queue.remove(pid)
            settled[pid] = (verdict, payload)
        else:
            taken = [q for q in queue if q <= pid]
            assert taken, "batch verdict matching nothing (ENOENT)"
            for q in taken:
                queue.remove(q)
                settled[q] = (verdict, None)
    return settled, queue


class Tx:
    def __init__(self, cap=4096):
        self.mem = ffi.new("uint8_t[]", cap)
        self.tx = ffi.new("struct nfq_tx *")
        lib.nfq_tx_init(self.tx, self.mem, cap, 4)
        self.sent = []

    def send(self):
        self.sent.append(bytes(ffi.buffer(self.mem, self.tx.len)))
        lib.nfq_tx_sent(self.tx)

    def verdict(self, pid, verdict, payload=None):
        for _ in range(2):
            if payload is None:
                rc = lib.nfq_tx_verdict(self.tx, pid, verdict)
            else:
                rc = lib.nfq_tx_verdict_payload(self.tx, pid, verdict, payload, len(payload))
            if rc != lib.NFQ_TX_FULL:
                return rc
            self.send()
        return rc

    def flush(self):
        assert lib.nfq_tx_close_batch(self.tx) == lib.NFQ_TX_OK
        self.send()
        return [m for chunk in self.sent for m in decode_verdicts(chunk)]


def test_batcher_collapses_runs_and_flushes_on_change_and_on_payload():
    tx = Tx()
    for pid in (1, 2, 3):
        tx.verdict(pid, NF_ACCEPT)
    for pid in (4, 5):
        tx.verdict(pid, NF_DROP)
    tx.verdict(6, NF_ACCEPT, payload=b"new")
    tx.verdict(7, NF_ACCEPT)
    assert tx.flush() == [("batch", NF_ACCEPT, 3, None), ("batch", NF_DROP, 5, None),
                          ("one", NF_ACCEPT, 6, b"new"), ("one", NF_ACCEPT, 7, None)]
    assert tx.tx.packets == 7 and tx.tx.messages == 4


def test_batcher_refuses_a_payload_that_can_never_fit():
    tx = Tx(cap=256)
    assert tx.verdict(1, NF_ACCEPT, payload=b"\0" * 300) == lib.NFQ_TX_TOO_BIG


@pytest.mark.parametrize("seed", range(20))
def test_batcher_gives_every_packet_exactly_its_verdict(seed):
    rng = random.Random(seed)
    tx = Tx(cap=rng.choice([96, 160, 512, 4096]))
    wanted = {}
    first = rng.randrange(1, 1000)
    for pid in range(first, first + rng.randrange(1, 300)):
        verdict = rng.choice([NF_ACCEPT, NF_ACCEPT, NF_ACCEPT, NF_DROP])
        payload = bytes([pid % 256]) * rng.randrange(1, 40) if rng.random() < 0.2 else None
        assert tx.verdict(pid, verdict, payload) == lib.NFQ_TX_OK
        wanted[pid] = (verdict, payload)
    settled, left = kernel_replay(sorted(wanted), tx.flush())
    assert left == [] and settled == wanted


# --- review fixes: what the check and the rewrite may read ------------------

def test_d3p_header_must_end_inside_the_ip_length():
    """IPv4 Total Length says 4 octets of D3P follow; trailing bytes (link
    padding) happen to complete a header.  The check reads the IP packet,
    not the padding: malformed, dropped -- and under count passed unchanged."""
    inner = d3p_header(17, NOW)
    raw = bytearray(bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=D3P) / inner))
    raw[2:4] = struct.pack("!H", 24)
    raw[10:12] = b"\0\0"
    raw[10:12] = struct.pack("!H", scapy_checksum(bytes(raw[:20])))
    d, out = decide(bytes(raw), lib.NFQ_ACTION_DROP, 1)
    assert d.cause == lib.D3P_MALFORMED and d.verdict == NF_DROP
    d, out = decide(bytes(raw), lib.NFQ_ACTION_COUNT, 1)
    assert d.cause == lib.D3P_MALFORMED and d.verdict == NF_ACCEPT and out is None
    # The same header with a Total Length that covers it is fresh.
    good = bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=D3P) / inner)
    assert decide(good + b"\0" * 6, lib.NFQ_ACTION_DROP, 0)[0].cause == lib.D3P_FRESH


def test_d3p_header_past_the_ipv6_payload_length_is_malformed():
    inner = d3p_header(17, NOW)
    raw = bytearray(d3p6(udp6(), NOW)[:40] + inner)
    raw[4:6] = struct.pack("!H", 6)  # payload length ends inside the D3P header
    d, _ = decide(bytes(raw), lib.NFQ_ACTION_DROP, 0)
    assert d.cause == lib.D3P_MALFORMED and d.verdict == NF_DROP


def scapy_checksum(header):
    from scapy.utils import checksum
    return checksum(header)


@pytest.mark.parametrize("build,src", [
    (lambda: d3p4(udp4(), NOW - 5 * W), "192.0.2.1"),
    (lambda: d3p6(udp6(), NOW - 5 * W), "2001:db8::1"),
], ids=["ipv4", "ipv6"])
def test_decision_keeps_the_source_from_before_the_strip(build, src):
    """count + strip rewrites the packet in place (the IP header moves 12
    octets on); what the history records is taken before that."""
    import ipaddress
    d, out = decide(build(), lib.NFQ_ACTION_COUNT, 1)
    assert d.cause == lib.D3P_TOO_OLD and d.modified
    size = 4 if d.family == 4 else 16
    assert str(ipaddress.ip_address(bytes(d.src)[:size])) == src


# IPv6 extension headers (RFC 8200 §4.3 hop-by-hop, §4.4 routing, §4.6
# destination options), built by Scapy, with D3P after them.
from scapy.layers.inet6 import (IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,  # noqa: E402
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)

EXT_CHAINS = {
    "hop-by-hop": lambda nh: IPv6ExtHdrHopByHop(nh=nh),
    "dest-opts": lambda nh: IPv6ExtHdrDestOpt(nh=nh),
    "hbh+routing+dest-opts": lambda nh: IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=[])
    / IPv6ExtHdrDestOpt(nh=nh),
}


def ext6(chain, upper_nh, upper):
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    return bytes(base / EXT_CHAINS[chain](upper_nh) / upper)


@pytest.mark.parametrize("chain", sorted(EXT_CHAINS))
def test_ipv6_extension_headers_before_d3p(chain):
    plain = ext6(chain, 17, UDP(sport=4000, dport=5000) / b"after-ext")
    payload = plain[-(8 + len(b"after-ext")):]  # the UDP datagram, checksum filled in
    wrapped = ext6(chain, D3P, d3p_header(17, NOW) + payload)
    offset = ffi.new("size_t *")
    assert lib.nfq_d3p_offset(wrapped, len(wrapped), D3P, offset) == lib.NFQ_PKT_OK
    assert offset[0] == len(wrapped) - 12 - len(payload)
    d, _ = decide(wrapped, lib.NFQ_ACTION_DROP, 0)
    assert d.cause == lib.D3P_FRESH and d.verdict == NF_ACCEPT
    assert decide(ext6(chain, D3P, d3p_header(17, NOW - 5 * W) + payload),
                  lib.NFQ_ACTION_DROP, 0)[0].cause == lib.D3P_TOO_OLD
    # Strip rewrites the last Next Header field and the payload length ...
    rc, stripped = strip(wrapped)
    assert rc == lib.NFQ_PKT_OK and stripped == plain
    # ... and stamp puts D3P after the extension headers (hop-by-hop first).
    rc, stamped = stamp(plain, NOW)
    assert rc == lib.NFQ_PKT_OK and stamped == wrapped


def test_ipv6_extension_walk_refuses_fragments_cuts_and_long_chains():
    offset = ffi.new("size_t *")
    frag = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
                 / IPv6ExtHdrFragment(nh=D3P) / d3p_header(17, NOW))
    assert lib.nfq_d3p_offset(frag, len(frag), D3P, offset) == lib.NFQ_PKT_FRAGMENT
    whole = ext6("hop-by-hop", D3P, d3p_header(17, NOW))
    assert lib.nfq_d3p_offset(whole, 44, D3P, offset) == lib.NFQ_PKT_TRUNCATED
    # An extension header running past the IPv6 payload length.
    lying = bytearray(whole)
    lying[4:6] = struct.pack("!H", 4)
    assert lib.nfq_d3p_offset(bytes(lying), len(lying), D3P, offset) == lib.NFQ_PKT_TRUNCATED
    chain = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for _ in range(9):
        chain = chain / IPv6ExtHdrDestOpt()
    long_chain = bytes(chain / d3p_header(17, NOW))
    assert lib.nfq_d3p_offset(long_chain, len(long_chain), D3P, offset) == lib.NFQ_PKT_NOT_D3P
    assert decide(long_chain, lib.NFQ_ACTION_DROP, 0)[0].cause == lib.D3P_MALFORMED


# The payload attribute of a verdict holds 0xffff - 4 octets (nla_len is 16
# bits and counts its 4-octet header); the IP length fields allow more.
MAX_VERDICT_PAYLOAD = 0xffff - 4


@pytest.mark.parametrize("family", [4, 6])
def test_stamp_limit_is_the_verdict_attribute(family):
    def packet(total):
        if family == 4:
            return bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP() / (b"\0" * (total - 28)))
        return bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP() / (b"\0" * (total - 48)))
    fits = packet(MAX_VERDICT_PAYLOAD - 12)
    assert stamp(fits, 1)[0] == lib.NFQ_PKT_OK
    assert stamp(packet(MAX_VERDICT_PAYLOAD - 11), 1)[0] == lib.NFQ_PKT_TOO_BIG
    # The largest stamped packet does fit a verdict message.
    rc, stamped = stamp(fits, 1)
    assert len(stamped) == MAX_VERDICT_PAYLOAD
    tx = Tx(cap=70000)
    assert tx.verdict(1, NF_ACCEPT, payload=stamped) == lib.NFQ_TX_OK


@pytest.mark.parametrize("cap", [32, 40, 63])
def test_batcher_refuses_a_buffer_too_small_to_switch_verdicts(cap):
    """With room for one plain message but not two, a change of verdict
    would answer FULL forever: such a buffer is refused up front."""
    tx = Tx(cap=cap)
    assert lib.nfq_tx_verdict(tx.tx, 1, NF_ACCEPT) == lib.NFQ_TX_TOO_BIG
    assert lib.nfq_tx_verdict_payload(tx.tx, 1, NF_ACCEPT, b"x", 1) == lib.NFQ_TX_TOO_BIG


def test_smallest_batcher_buffer_alternates_verdicts():
    tx = Tx(cap=64)
    wanted = {}
    for pid in range(1, 41):
        verdict = NF_ACCEPT if pid % 3 else NF_DROP
        assert tx.verdict(pid, verdict) == lib.NFQ_TX_OK
        wanted[pid] = (verdict, None)
    settled, left = kernel_replay(sorted(wanted), tx.flush())
    assert left == [] and settled == wanted


def test_batcher_without_batching_names_every_id():
    """no_batch: after an id was lost, no message may cover more than its own id."""
    tx = Tx()
    tx.tx.no_batch = 1
    for pid in (5, 6, 7):
        assert tx.verdict(pid, NF_ACCEPT) == lib.NFQ_TX_OK
    assert tx.verdict(8, NF_DROP) == lib.NFQ_TX_OK
    assert tx.flush() == [("one", NF_ACCEPT, 5, None), ("one", NF_ACCEPT, 6, None),
                          ("one", NF_ACCEPT, 7, None), ("one", NF_DROP, 8, None)]


# --- the error history's rate: a sliding 60 s window ---------------------------

def history(times):
    w = ffi.new("struct nfq_stats *")
    for i, t in enumerate(times):
        w.history[i].time_ms = t
    w.history_len = len(times)
    return w


def test_history_rate_is_a_sliding_minute():
    ten = [1_000_000 + i for i in range(10)]
    w = history(ten)
    assert lib.nfq_history_budget_left(w, 10, ten[0] + 59_999) == 0
    assert lib.nfq_history_budget_left(w, 10, ten[0] + 60_000) == 1
    # Nine in the window: one more fits, whatever came before.
    w = history([5] + [1_000_000 + i for i in range(9)])
    assert lib.nfq_history_budget_left(w, 10, 1_000_100) == 1
    # A minute bucket would reset here; the sliding window does not: one
    # record at 0 and nine at 59 000 leave room for exactly one at 60 000.
    w = history([0] + [59_000 + i for i in range(9)])
    assert lib.nfq_history_budget_left(w, 10, 60_000) == 1
    w = history([0] + [59_000 + i for i in range(9)] + [60_000])
    assert lib.nfq_history_budget_left(w, 10, 60_001) == 0
    assert lib.nfq_history_budget_left(w, 10, 119_000) == 1
    assert lib.nfq_history_budget_left(history([]), 0, 1) == 0
    # A clock stepped back: the records count as recent.
    assert lib.nfq_history_budget_left(history(ten), 10, 10) == 0


def test_merged_history_uses_the_same_sliding_window():
    from d3p_fast.nfq import sample_history
    records = [{"time_ms": t} for t in [0] + [59_000 + i for i in range(9)]
               + [60_000 + i for i in range(10)] + [119_008, 119_009]]
    kept = [r["time_ms"] for r in sample_history(records, 10, 32)]
    assert kept == [0] + [59_000 + i for i in range(9)] + [60_000, 119_008, 119_009]
    for t in kept:
        assert len([k for k in kept if t - 60_000 < k <= t]) <= 10
