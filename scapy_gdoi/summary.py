# SPDX-License-Identifier: GPL-2.0-only
"""What a dissected (plaintext) GDOI message says, as plain Python values.

:func:`summarize` walks the payload chain once and returns a :class:`MessageSummary`:
SEQ, the SA KEK policy, the GAP (ATD/DTD and the IP-D3P attributes of DECISIONS.md §3),
the SA TEKs, DELETEs, the HASH / ID of an ACK, and the KD key packets. The key store
learns keys from it and the analyser reports it; neither needs to know the layers.
"""
import struct

from scapy_gdoi import _consts as C
from scapy_gdoi import wire


class KEKPolicyInfo:
    """The attributes of one SA KEK payload (RFC 6407 §5.3)."""

    def __init__(self, spi, algorithm=None, key_bits=None, sig_hash=None,
                 sig_algorithm=None, sig_key_bits=None, lifetime=None, ack_requested=None):
        self.spi = spi
        self.algorithm = algorithm  # KEK_ALGORITHM number
        self.key_bits = key_bits  # KEK_KEY_LENGTH (bits)
        self.sig_hash = sig_hash
        self.sig_algorithm = sig_algorithm
        self.sig_key_bits = sig_key_bits
        self.lifetime = lifetime
        self.ack_requested = ack_requested  # KEK_ACK_REQUESTED value (RFC 8263) or None


class KEKKeyInfo:
    """A KEK key packet of a KD (RFC 6407 §5.6.2)."""

    def __init__(self, spi, algorithm_key=None, signature_key=None):
        self.spi = spi
        self.algorithm_key = algorithm_key  # IV ‖ key
        self.signature_key = signature_key  # SIG_ALGORITHM_KEY (DER SPKI in gdoid)


class MessageSummary:
    """Everything the analyser and the key store need from one plaintext message."""

    def __init__(self):
        self.seq = None
        self.keks = []  # [KEKPolicyInfo]
        self.gap = None  # {"atd", "dtd", "d3p_type", "d3p_window_ms"}
        self.teks = []  # [{"spi", "protocol", "transform"}]
        self.deletes = []  # [{"protocol", "spis"}]
        self.kek_keys = []  # [KEKKeyInfo]
        self.tek_key_spis = []  # [hex]
        self.hash = None  # HASH payload value (ACK, PULL)
        self.member_id = None  # (id_type, id_data) of the ID payload
        self.has_sig = False


def _gap_info(gap):
    from scapy_gdoi.gdoi import attr_value
    attrs = gap.attrs
    return {"atd": attr_value(attrs, C.GAP_ATTR_ACTIVATION_TIME_DELAY),
            "dtd": attr_value(attrs, C.GAP_ATTR_DEACTIVATION_TIME_DELAY),
            "d3p_type": attr_value(attrs, C.GAP_ATTR_D3P_TYPE),
            "d3p_window_ms": attr_value(attrs, C.GAP_ATTR_D3P_WINDOW_SIZE)}


def _kek_policy(sak):
    from scapy_gdoi.gdoi import attr_value
    attrs = sak.attrs
    return KEKPolicyInfo(
        spi=bytes(sak.spi),
        algorithm=attr_value(attrs, C.KEK_ATTR_ALGORITHM),
        key_bits=attr_value(attrs, C.KEK_ATTR_KEY_LENGTH),
        sig_hash=attr_value(attrs, C.KEK_ATTR_SIG_HASH_ALGORITHM),
        sig_algorithm=attr_value(attrs, C.KEK_ATTR_SIG_ALGORITHM),
        sig_key_bits=attr_value(attrs, C.KEK_ATTR_SIG_KEY_LENGTH),
        lifetime=attr_value(attrs, C.KEK_ATTR_KEY_LIFETIME),
        ack_requested=attr_value(attrs, C.KEK_ATTR_ACK_REQUESTED))


#: Short protocol names for reports (RFC 6407 §5.4 Protocol-ID).
TEK_PROTOCOL_NAMES = {C.TEK_PROTO_ESP: "ESP", C.TEK_PROTO_AH: "AH",
                      C.TEK_PROTO_IEC61850: "IEC61850"}


def _tek_info(sat):
    from scapy_gdoi.gdoi import GDOI_SAT_IPsec, GDOI_SAT_IPsec_RFC3547
    protocol = TEK_PROTOCOL_NAMES.get(sat.protocol_id, str(sat.protocol_id))
    if isinstance(sat, (GDOI_SAT_IPsec, GDOI_SAT_IPsec_RFC3547)):
        table = C.ESP_TRANSFORMS if sat.protocol_id == C.TEK_PROTO_ESP else C.AH_TRANSFORMS
        return {"spi": "%08x" % sat.spi, "protocol": protocol,
                "transform": table.get(sat.transform_id, str(sat.transform_id))}
    return {"spi": None, "protocol": protocol, "transform": None}


def _add_key_download(summary, kd):
    from scapy_gdoi.gdoi import attr_value
    for key_packet in kd.key_packets:
        spi = bytes(key_packet.spi or b"")
        if key_packet.kd_type == C.KD_KEK:
            summary.kek_keys.append(KEKKeyInfo(
                spi,
                algorithm_key=attr_value(key_packet.attrs, C.KEK_KEY_ALGORITHM_KEY),
                signature_key=attr_value(key_packet.attrs, C.KEK_KEY_SIG_ALGORITHM_KEY)))
        elif key_packet.kd_type == C.KD_TEK:
            summary.tek_key_spis.append(spi.hex())


def _add_sa(summary, sa):
    from scapy_gdoi.gdoi import GDOI_GAP, GDOI_SAK, GDOI_SAT
    for sub in sa.sub_payloads():
        if isinstance(sub, GDOI_SAK):
            summary.keks.append(_kek_policy(sub))
        elif isinstance(sub, GDOI_GAP):
            summary.gap = _gap_info(sub)
        elif isinstance(sub, GDOI_SAT):
            summary.teks.append(_tek_info(sub))


def summarize(pkt):
    """A :class:`MessageSummary` of a dissected plaintext GDOI message."""
    from scapy_gdoi.gdoi import (GDOI_DELETE, GDOI_HASH, GDOI_ID, GDOI_KD, GDOI_SA,
                                 GDOI_SEQ, GDOI_SIG, GDOI_Payload)
    summary = MessageSummary()
    layer = pkt.payload
    while isinstance(layer, GDOI_Payload):
        if isinstance(layer, GDOI_SEQ):
            summary.seq = layer.seq
        elif isinstance(layer, GDOI_SA):
            _add_sa(summary, layer)
        elif isinstance(layer, GDOI_KD):
            _add_key_download(summary, layer)
        elif isinstance(layer, GDOI_DELETE):
            summary.deletes.append({"protocol": layer.protocol_id,
                                    "spis": [bytes(s).hex() for s in layer.spis]})
        elif isinstance(layer, GDOI_HASH):
            summary.hash = bytes(layer.hash)
        elif isinstance(layer, GDOI_ID):
            summary.member_id = (layer.id_type, layer.id_data)
        elif isinstance(layer, GDOI_SIG):
            summary.has_sig = True
        layer = layer.payload
    return summary


# -- The same summary straight from bytes (the analyser's fast path) ----------------------
#
# Dissecting a rekey with the Scapy layers costs ~4 ms; a capture of a million rekeys
# needs the walk below instead (bench/bench_analyze.py measures it). It applies the
# layers' own bounds checks (their ``min_length`` and ``_fits`` validators, which work
# on bytes): a payload the layers keep generic is skipped here too, so the fast path
# never reports (or teaches a key from) what the layers refuse. tests/test_summary.py
# checks that both paths agree, on real and forged messages and under fuzzing.

def _layer_accepts(cls, body):
    """Whether the layers dissect `body` (exactly Payload Length octets) as `cls`."""
    return len(body) >= cls.min_length and cls._fits(body)


def _attributes(data):
    """[(type, is_tv, int-or-bytes)] of a data-attribute list (RFC 2408 §3.3), read as
    the layers read it: a trailing header-less fragment ends the list, a TLV value is
    cut at the end of the data."""
    out, offset = [], 0
    while offset + ATTRIBUTE_HEADER_LEN <= len(data):
        word, value = struct.unpack_from("!HH", data, offset)
        if word & ATTRIBUTE_FORMAT_TV:
            out.append((word & ~ATTRIBUTE_FORMAT_TV, True, value))
            offset += ATTRIBUTE_HEADER_LEN
        else:
            start = offset + ATTRIBUTE_HEADER_LEN
            out.append((word, False, data[start:start + value]))
            offset = start + value
    return out


def _value(attrs, attr_type, numeric_tlv=()):
    """The first `attr_type` value as the layers give it (GDOI_Attribute.val): an int
    for TV and for the numeric TLV types, bytes for the other TLVs; None if absent."""
    for number, is_tv, value in attrs:
        if number == attr_type:
            if is_tv or number not in numeric_tlv:
                return value
            return int.from_bytes(value, "big")
    return None


#: Data-attribute format bit: 1 = TV ("basic"), 0 = TLV (RFC 2408 §3.3).
ATTRIBUTE_FORMAT_TV = C.ATTRIBUTE_FORMAT_TV
ATTRIBUTE_HEADER_LEN = 4
#: SA KEK layout (RFC 6407 §5.3): generic header, Protocol, SRC ID Type, SRC ID Port,
#: then the SRC ID Data Length octet; after both IDs the 16-octet SPI and 4 reserved
#: (RFC 3547: POP algorithm / key length) octets before the attributes.
SAK_SRC_ID_LEN_OFFSET = 8
SAK_SPI_LEN = wire.KEK_SPI_LEN
SAK_AFTER_SPI_LEN = 4
#: SA payload (RFC 6407 §5.1): header 4, DOI 4, Situation 4, SA Next Payload 2, RESERVED 2.
SA_NEXT_PAYLOAD_OFFSET, SA_HEADER_LEN = 12, 16
#: KD payload (RFC 6407 §5.6): header 4, Number of Key Packets 2, RESERVED 2; each key
#: packet: KD Type 1, RESERVED 1, KD Length 2, SPI Size 1, SPI.
KD_HEADER_LEN, KEY_PACKET_HEADER_LEN = 8, 5
#: DELETE payload (RFC 2408 §3.15): header 4, DOI 4, Protocol-ID 1, SPI Size 1, # 2.
DELETE_PROTOCOL_OFFSET, DELETE_SPI_SIZE_OFFSET, DELETE_COUNT_OFFSET = 8, 9, 10
DELETE_HEADER_LEN = 12
#: ID payload (RFC 2407 §4.6.2): header 4, ID Type 1, Protocol 1, Port 2, then data.
ID_TYPE_OFFSET, ID_HEADER_LEN = 4, 8
#: SA TEK (RFC 6407 §5.4.1): header 4, Protocol-ID 1, Protocol 1, then the two IDs.
SAT_PROTOCOL_ID_OFFSET, SAT_FIRST_ID_OFFSET = 4, 6


def _sak_bytes(body):
    from scapy_gdoi.gdoi import GDOI_KEK_Attr
    offset = SAK_SRC_ID_LEN_OFFSET
    offset += 1 + body[offset]  # SRC ID Data Len + data
    offset += 3  # DST ID Type, DST ID Port
    offset += 1 + body[offset]
    spi = body[offset:offset + SAK_SPI_LEN]
    attrs = _attributes(body[offset + SAK_SPI_LEN + SAK_AFTER_SPI_LEN:])
    numeric = GDOI_KEK_Attr.numeric_tlv
    return KEKPolicyInfo(
        spi=spi, algorithm=_value(attrs, C.KEK_ATTR_ALGORITHM, numeric),
        key_bits=_value(attrs, C.KEK_ATTR_KEY_LENGTH, numeric),
        sig_hash=_value(attrs, C.KEK_ATTR_SIG_HASH_ALGORITHM, numeric),
        sig_algorithm=_value(attrs, C.KEK_ATTR_SIG_ALGORITHM, numeric),
        sig_key_bits=_value(attrs, C.KEK_ATTR_SIG_KEY_LENGTH, numeric),
        lifetime=_value(attrs, C.KEK_ATTR_KEY_LIFETIME, numeric),
        ack_requested=_value(attrs, C.KEK_ATTR_ACK_REQUESTED, numeric))


def _gap_bytes(body):
    from scapy_gdoi.gdoi import GDOI_GAP_Attr
    attrs = _attributes(body[wire.GENERIC_PAYLOAD_HEADER_LEN:])
    numeric = GDOI_GAP_Attr.numeric_tlv
    return {"atd": _value(attrs, C.GAP_ATTR_ACTIVATION_TIME_DELAY, numeric),
            "dtd": _value(attrs, C.GAP_ATTR_DEACTIVATION_TIME_DELAY, numeric),
            "d3p_type": _value(attrs, C.GAP_ATTR_D3P_TYPE, numeric),
            "d3p_window_ms": _value(attrs, C.GAP_ATTR_D3P_WINDOW_SIZE, numeric)}


def _sat_bytes(body):
    """The TEK report of an SA TEK the layers accept as GDOI_SAT (or a subclass)."""
    from scapy_gdoi.gdoi import _sat_layout_fits, detect_sat_encoding, get_encoding
    protocol_id = body[SAT_PROTOCOL_ID_OFFSET]
    protocol = TEK_PROTOCOL_NAMES.get(protocol_id, str(protocol_id))
    opaque = {"spi": None, "protocol": protocol, "transform": None}
    if protocol_id not in (C.TEK_PROTO_ESP, C.TEK_PROTO_AH):
        return opaque
    encoding = get_encoding() or detect_sat_encoding(body)
    id_len = 2 if encoding == C.ENCODING_RFC6407 else 1
    if encoding is None or not _sat_layout_fits(body, id_len):
        return opaque  # the layers keep it as an opaque GDOI_SAT too
    offset = SAT_FIRST_ID_OFFSET + 3  # SRC ID Type, SRC ID Port
    offset += id_len + int.from_bytes(body[offset:offset + id_len], "big") + 3
    offset += id_len + int.from_bytes(body[offset:offset + id_len], "big")
    transform_id = body[offset]
    (spi,) = struct.unpack_from("!I", body, offset + 1)
    table = C.ESP_TRANSFORMS if protocol_id == C.TEK_PROTO_ESP else C.AH_TRANSFORMS
    return {"spi": "%08x" % spi, "protocol": protocol,
            "transform": table.get(transform_id, str(transform_id))}


def _kd_bytes(summary, body):
    """Key packets of a KD the layers accept (GDOI_KD._fits: each one ends inside it)."""
    offset = KD_HEADER_LEN
    while offset < len(body):
        kd_type = body[offset]
        (kd_length,) = struct.unpack_from("!H", body, offset + wire.PAYLOAD_LENGTH_OFFSET)
        packet = body[offset:offset + kd_length]
        spi_size = packet[KEY_PACKET_HEADER_LEN - 1]
        # As GDOI_KeyPacket: the SPI and attributes never read past KD Length.
        spi = packet[KEY_PACKET_HEADER_LEN:KEY_PACKET_HEADER_LEN + spi_size]
        attrs = _attributes(packet[KEY_PACKET_HEADER_LEN + spi_size:])
        if kd_type == C.KD_KEK:
            summary.kek_keys.append(KEKKeyInfo(
                spi, algorithm_key=_value(attrs, C.KEK_KEY_ALGORITHM_KEY),
                signature_key=_value(attrs, C.KEK_KEY_SIG_ALGORITHM_KEY)))
        elif kd_type == C.KD_TEK:
            summary.tek_key_spis.append(spi.hex())
        offset += kd_length


def _sa_bytes(summary, body):
    from scapy_gdoi.gdoi import GDOI_GAP, GDOI_SAK, GDOI_SAT
    (first,) = struct.unpack_from("!H", body, SA_NEXT_PAYLOAD_OFFSET)
    for ptype, _offset, sub in wire.iter_payloads(first, body[SA_HEADER_LEN:]):
        if ptype == C.PT_SAK and _layer_accepts(GDOI_SAK, sub):
            summary.keks.append(_sak_bytes(sub))
        elif ptype == C.PT_GAP and _layer_accepts(GDOI_GAP, sub):
            summary.gap = _gap_bytes(sub)
        elif ptype == C.PT_SAT and _layer_accepts(GDOI_SAT, sub):
            summary.teks.append(_sat_bytes(sub))


def summarize_bytes(plain):
    """:func:`summarize` of a plaintext message given as bytes, without dissecting it.

    Raises :class:`scapy_gdoi.wire.WireError` for bytes whose payload chain is not
    well formed (a payload, or an SA member, whose length runs past its end).
    """
    try:
        return _summarize_bytes(plain)
    except (IndexError, struct.error) as exc:
        raise wire.WireError("malformed GDOI payload: %s" % exc)


def _summarize_bytes(plain):
    from scapy_gdoi.gdoi import GDOI_PAYLOAD_CLASSES
    header = wire.Header(plain)
    summary = MessageSummary()
    for ptype, _offset, body in wire.iter_payloads(header.next_payload,
                                                    plain[wire.HEADER_LEN:]):
        cls = GDOI_PAYLOAD_CLASSES.get(ptype)
        if cls is None or not _layer_accepts(cls, body):
            continue  # the layers keep it generic: it says nothing
        if ptype == C.PT_SEQ:
            (summary.seq,) = struct.unpack_from("!I", body, wire.GENERIC_PAYLOAD_HEADER_LEN)
        elif ptype == C.PT_SA:
            if header.exch_type in C.GDOI_SA_EXCHANGES:  # else an ISAKMP phase-1 SA
                _sa_bytes(summary, body)
        elif ptype == C.PT_KD:
            _kd_bytes(summary, body)
        elif ptype == C.PT_DELETE:
            spi_size = body[DELETE_SPI_SIZE_OFFSET]
            (count,) = struct.unpack_from("!H", body, DELETE_COUNT_OFFSET)
            summary.deletes.append({"protocol": body[DELETE_PROTOCOL_OFFSET], "spis": [
                body[DELETE_HEADER_LEN + i * spi_size:DELETE_HEADER_LEN + (i + 1) * spi_size]
                .hex() for i in range(count)]})
        elif ptype == C.PT_HASH:
            summary.hash = body[wire.GENERIC_PAYLOAD_HEADER_LEN:]
        elif ptype == C.PT_ID:
            summary.member_id = (body[ID_TYPE_OFFSET], body[ID_HEADER_LEN:])
        elif ptype == C.PT_SIG:
            summary.has_sig = True
    return summary
