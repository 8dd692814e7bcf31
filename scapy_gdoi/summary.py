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
# needs the walk below instead (bench/bench_analyze.py measures it). The field layouts
# are the RFC figures the layers implement; tests/test_analyze.py checks that both
# paths agree on the gdoid vectors and on forged messages.

def _attributes(data):
    """[(type, int-or-bytes)] of a data-attribute list (RFC 2408 §3.3)."""
    out, offset = [], 0
    while offset + 4 <= len(data):
        word, value = struct.unpack_from("!HH", data, offset)
        if word & 0x8000:
            out.append((word & 0x7FFF, value))
            offset += 4
        else:
            out.append((word, data[offset + 4:offset + 4 + value]))
            offset += 4 + value
    return out


def _numeric(attrs, attr_type):
    for number, value in attrs:
        if number == attr_type:
            return value if isinstance(value, int) else int.from_bytes(value, "big")
    return None


def _raw(attrs, attr_type):
    for number, value in attrs:
        if number == attr_type:
            return value if isinstance(value, bytes) else value.to_bytes(2, "big")
    return None


def _sak_bytes(body):
    offset = 6  # header, Protocol, SRC ID Type
    offset += 2
    offset += 1 + body[offset]  # SRC ID Data Len + data
    offset += 3  # DST ID Type, DST ID Port
    offset += 1 + body[offset]
    spi = body[offset:offset + 16]
    attrs = _attributes(body[offset + 20:])
    return KEKPolicyInfo(
        spi=spi, algorithm=_numeric(attrs, C.KEK_ATTR_ALGORITHM),
        key_bits=_numeric(attrs, C.KEK_ATTR_KEY_LENGTH),
        sig_hash=_numeric(attrs, C.KEK_ATTR_SIG_HASH_ALGORITHM),
        sig_algorithm=_numeric(attrs, C.KEK_ATTR_SIG_ALGORITHM),
        sig_key_bits=_numeric(attrs, C.KEK_ATTR_SIG_KEY_LENGTH),
        lifetime=_numeric(attrs, C.KEK_ATTR_KEY_LIFETIME),
        ack_requested=_numeric(attrs, C.KEK_ATTR_ACK_REQUESTED))


def _gap_bytes(body):
    attrs = _attributes(body[4:])
    return {"atd": _numeric(attrs, C.GAP_ATTR_ACTIVATION_TIME_DELAY),
            "dtd": _numeric(attrs, C.GAP_ATTR_DEACTIVATION_TIME_DELAY),
            "d3p_type": _numeric(attrs, C.GAP_ATTR_D3P_TYPE),
            "d3p_window_ms": _numeric(attrs, C.GAP_ATTR_D3P_WINDOW_SIZE)}


def _sat_bytes(body):
    from scapy_gdoi.gdoi import detect_sat_encoding, get_encoding
    protocol_id = body[4]
    protocol = TEK_PROTOCOL_NAMES.get(protocol_id, str(protocol_id))
    if protocol_id not in (C.TEK_PROTO_ESP, C.TEK_PROTO_AH):
        return {"spi": None, "protocol": protocol, "transform": None}
    encoding = get_encoding() or detect_sat_encoding(body)
    if encoding is None:
        return {"spi": None, "protocol": protocol, "transform": None}
    id_len = 2 if encoding == C.ENCODING_RFC6407 else 1
    offset = 9  # header, Protocol-ID, Protocol, SRC ID Type, SRC ID Port
    offset += id_len + int.from_bytes(body[offset:offset + id_len], "big") + 3
    offset += id_len + int.from_bytes(body[offset:offset + id_len], "big")
    transform_id = body[offset]
    (spi,) = struct.unpack_from("!I", body, offset + 1)
    table = C.ESP_TRANSFORMS if protocol_id == C.TEK_PROTO_ESP else C.AH_TRANSFORMS
    return {"spi": "%08x" % spi, "protocol": protocol,
            "transform": table.get(transform_id, str(transform_id))}


def _kd_bytes(summary, body):
    offset = 8
    while offset + 5 <= len(body):
        kd_type = body[offset]
        (kd_length,) = struct.unpack_from("!H", body, offset + 2)
        if kd_length < 5:
            raise wire.WireError("key packet with a bad length %d" % kd_length)
        spi_size = body[offset + 4]
        spi = body[offset + 5:offset + 5 + spi_size]
        attrs = _attributes(body[offset + 5 + spi_size:offset + kd_length])
        if kd_type == C.KD_KEK:
            summary.kek_keys.append(KEKKeyInfo(
                spi, algorithm_key=_raw(attrs, C.KEK_KEY_ALGORITHM_KEY),
                signature_key=_raw(attrs, C.KEK_KEY_SIG_ALGORITHM_KEY)))
        elif kd_type == C.KD_TEK:
            summary.tek_key_spis.append(spi.hex())
        offset += kd_length


def _sa_bytes(summary, body):
    if len(body) < 16:
        raise wire.WireError("SA payload shorter than 16 octets")
    (first,) = struct.unpack_from("!H", body, 12)
    for ptype, _offset, sub in wire.iter_payloads(first, body[16:]):
        if ptype == C.PT_SAK:
            summary.keks.append(_sak_bytes(sub))
        elif ptype == C.PT_GAP:
            summary.gap = _gap_bytes(sub)
        elif ptype == C.PT_SAT:
            summary.teks.append(_sat_bytes(sub))


def summarize_bytes(plain):
    """:func:`summarize` of a plaintext message given as bytes, without Scapy.

    Raises :class:`scapy_gdoi.wire.WireError` for bytes that are not a well-formed
    message (including a payload whose inner lengths run past its end).
    """
    try:
        return _summarize_bytes(plain)
    except (IndexError, struct.error) as exc:
        raise wire.WireError("malformed GDOI payload: %s" % exc)


def _summarize_bytes(plain):
    header = wire.Header(plain)
    summary = MessageSummary()
    for ptype, _offset, body in wire.iter_payloads(header.next_payload,
                                                    plain[wire.HEADER_LEN:]):
        if ptype == C.PT_SEQ and len(body) == 8:
            (summary.seq,) = struct.unpack_from("!I", body, 4)
        elif ptype == C.PT_SA:
            _sa_bytes(summary, body)
        elif ptype == C.PT_KD:
            _kd_bytes(summary, body)
        elif ptype == C.PT_DELETE and len(body) >= 12:
            spi_size, count = body[9], struct.unpack_from("!H", body, 10)[0]
            summary.deletes.append({"protocol": body[8], "spis": [
                body[12 + i * spi_size:12 + (i + 1) * spi_size].hex() for i in range(count)]})
        elif ptype == C.PT_HASH:
            summary.hash = body[4:]
        elif ptype == C.PT_ID and len(body) >= 8:
            summary.member_id = (body[4], body[8:])
        elif ptype == C.PT_SIG:
            summary.has_sig = True
    return summary
