# SPDX-License-Identifier: GPL-2.0-only
"""GDOI (RFC 6407, and the RFC 3547 form) over ISAKMP on UDP 848.

# scapy.contrib.description = Group Domain of Interpretation (GDOI, RFC 6407)
# scapy.contrib.status = loads

Every GDOI message is an ISAKMP message (RFC 2408): the :class:`GDOI` header
followed by a chain of payloads, each naming the type of the next one. The GDOI
SA payload (RFC 6407 §5.1) holds a second chain of its own -- SA KEK, GAP and SA
TEK sub-payloads -- inside its length; in IKEv1 phase 1 with DOI 2 the SA payload
keeps the ISAKMP proposal/transform layout instead, so the SA layout is chosen by
the exchange type of the enclosing header.

Dissection never raises on bad input: a payload whose declared lengths do not fit
the bytes becomes a generic :class:`GDOI_Payload` (header + ``load``), and bytes that
do not belong to any payload are left as ``Raw``. (Like Scapy's own ISAKMP, a chain
of thousands of payloads exceeds Python's recursion limit when
``conf.debug_dissector`` is set; by default the rest is then kept as ``Raw``.)
Building fills every length and next-payload field left at ``None``, so a test can
still force a wrong value; after editing a dissected message, :func:`clear_lengths`
lets them be computed again.

>>> from scapy_gdoi import *
>>> push = (GDOI(init_cookie=b"abcdefgh", resp_cookie=b"01234567", exch_type=33)
...         / GDOI_SEQ(seq=7)
...         / GDOI_SA(payloads=GDOI_SAK(spi=b"abcdefgh01234567") / GDOI_GAP())
...         / GDOI_KD() / GDOI_SIG(sig=b"..."))
>>> GDOI(bytes(push))[GDOI_SEQ].seq
7
"""

import struct

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    FieldListField,
    FlagsField,
    IntEnumField,
    IntField,
    MultiEnumField,
    PacketLenField,
    PacketListField,
    ShortEnumField,
    ShortField,
    XIntField,
    XByteField,
    XShortField,
    XStrFixedLenField,
    XStrLenField,
)
from scapy.layers.inet import UDP
from scapy.layers.isakmp import ISAKMP, ISAKMP_payload_Proposal
from scapy.packet import NoPayload, Packet, bind_bottom_up, bind_top_down

from scapy_gdoi import _consts as C
from scapy_gdoi.fields import AttrDataField, AttrValueField, IdentDataField

__all__ = [
    "GDOI", "GDOI_Payload", "GDOI_SA", "GDOI_SA_Phase1", "GDOI_SAK", "GDOI_GAP", "GDOI_SAT",
    "GDOI_SAT_IPsec", "GDOI_SAT_IPsec_RFC3547", "GDOI_KD", "GDOI_KeyPacket", "GDOI_SEQ",
    "GDOI_ID", "GDOI_HASH", "GDOI_SIG", "GDOI_NONCE", "GDOI_KE", "GDOI_CERT", "GDOI_DELETE",
    "GDOI_NOTIFY", "GDOI_VENDOR_ID", "GDOI_POP", "GDOI_Attribute", "GDOI_KEK_Attr",
    "GDOI_GAP_Attr", "GDOI_IPsec_Attr", "GDOI_KD_TEK_Attr", "GDOI_KD_KEK_Attr",
    "GDOI_KD_LKH_Attr", "GDOI_KD_SID_Attr", "find_attr", "attr_value", "set_encoding", "clear_lengths",
    "get_encoding", "detect_sat_encoding", "payload_type_of",
]

# -- Settings ---------------------------------------------------------------------------

_settings = conf.contribs.setdefault("gdoi", {"encoding": None})


def set_encoding(encoding):
    """Choose how SA TEK (ESP/AH) identities are read (DECISIONS.md §1).

    ``"rfc6407"``: ID Data Length is 2 octets. ``"rfc3547"``: 1 octet, as in the
    Cisco reference implementation. ``None`` (the default): detect per payload from
    the bytes -- see :func:`detect_sat_encoding`.
    """
    if encoding not in (None,) + C.ENCODINGS:
        raise ValueError("encoding must be None, %r or %r" % C.ENCODINGS)
    _settings["encoding"] = encoding


def get_encoding():
    return _settings.get("encoding")


# -- Data attributes (RFC 2408 §3.3) ----------------------------------------------------

class GDOI_Attribute(Packet):
    """One data attribute: basic (TV, AF=1, 16-bit value) or variable (TLV).

    ``af`` left at None is decided on build: TLV when ``data`` is set, TV otherwise.
    Giving ``value`` bytes, a number above 16 bits, or a number for an attribute the
    specification makes TLV, stores it in ``data`` instead -- at construction and on
    every later assignment. An ``af`` that contradicts the value given, or a type
    above 15 bits, is refused on build rather than silently dropped.
    """
    name = "GDOI attribute"
    attr_table = {}  # type -> (name, {value: name})
    tlv_widths = {}  # TLV attributes that carry a number of a mandated width
    numeric_tlv = frozenset()  # TLV attributes shown as numbers
    #: Types that may be basic (TV); None means every type may be.
    tv_types = None
    fields_desc = [
        BitField("af", None, 1),
        BitEnumField("type", 0, 15, {}),
        ConditionalField(ShortField("length", None), lambda pkt: not pkt.is_basic),
        ConditionalField(AttrValueField("value", 0), lambda pkt: pkt.is_basic),
        ConditionalField(AttrDataField("data", None, length_from=lambda pkt: pkt.length),
                         lambda pkt: not pkt.is_basic),
    ]

    def __init__(self, _pkt=b"", *args, **fields):
        if not _pkt and "value" in fields and self._value_needs_tlv(
                fields["value"], fields.get("type", 0), fields.get("af")):
            fields["data"] = fields.pop("value")
        super().__init__(_pkt, *args, **fields)

    def setfieldval(self, attr, val):
        if attr == "value" and self._value_needs_tlv(val, self.type, self.af):
            self.fields.pop("value", None)
            attr = "data"
        super().setfieldval(attr, val)

    @classmethod
    def _type_number(cls, attr_type):
        if isinstance(attr_type, str):
            for number, (name, _values) in cls.attr_table.items():
                if name == attr_type:
                    return number
            raise ValueError("unknown %s type %r" % (cls.name, attr_type))
        return attr_type

    def _value_needs_tlv(self, value, attr_type, af):
        if af is not None or isinstance(value, str) or value is None:
            return False  # an explicit AF is the user's call; names are TV values
        attr_type = self._type_number(attr_type)
        if isinstance(value, (bytes, bytearray)) or attr_type in self.tlv_widths:
            return True
        if self.tv_types is not None and attr_type not in self.tv_types:
            return True
        return isinstance(value, int) and not 0 <= value <= C.TV_ATTRIBUTE_MAX

    def self_build(self):
        af = self.fields.get("af")
        if self.type > C.ATTRIBUTE_TYPE_MAX:
            raise ValueError("attribute type %d does not fit 15 bits" % self.type)
        if af == 0 and "value" in self.fields:
            raise ValueError("af=0 (TLV) with a TV value: give data= instead")
        if af == 1 and self.fields.get("data") is not None:
            raise ValueError("af=1 (TV) with TLV data: give value= instead")
        if self.is_basic and not 0 <= (self.value or 0) <= C.TV_ATTRIBUTE_MAX:
            raise ValueError("a basic (TV) attribute carries 16 bits, not %d" % self.value)
        return super().self_build()

    @property
    def is_basic(self):
        # Read the raw slots: going through the fields would evaluate the
        # ConditionalFields, which ask is_basic again.
        af = self.fields.get("af", self.default_fields.get("af"))
        if af is not None:
            return af == 1
        return self.fields.get("data", self.default_fields.get("data")) is None

    @property
    def val(self):
        """The value: an int for TV and numeric TLV attributes, bytes otherwise."""
        if self.is_basic:
            return self.value
        if self.type in self.numeric_tlv and self.data is not None:
            return int.from_bytes(self.data, "big")
        return self.data

    @property
    def type_name(self):
        entry = self.attr_table.get(self.type)
        return entry[0] if entry else str(self.type)

    def post_build(self, pkt, pay):
        if self.af is None and self.is_basic:
            pkt = bytes([pkt[0] | 0x80]) + pkt[1:]
        if not self.is_basic and self.length is None:
            pkt = pkt[:2] + struct.pack("!H", len(pkt) - 4) + pkt[4:]
        return pkt + pay

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return "%s=%s" % (self.type_name, self.val)

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        # An attribute needs at least its 4-octet header; less is trailing junk.
        if _pkt is not None and len(_pkt) < 4:
            return conf.raw_layer
        return cls


def _attribute_class(name, table, tlv_widths=None, numeric_tlv=(), tv_types=None):
    enum = {number: entry[0] for number, entry in table.items()}
    fields = list(GDOI_Attribute.fields_desc)
    fields[1] = BitEnumField("type", 0, 15, enum)
    return type(name, (GDOI_Attribute,), {
        "name": name.replace("_", " "),
        "attr_table": table,
        "tlv_widths": dict(tlv_widths or {}),
        "numeric_tlv": frozenset(numeric_tlv) | frozenset(tlv_widths or {}),
        "tv_types": tv_types,
        "fields_desc": fields,
        "dispatch_hook": GDOI_Attribute.__dict__["dispatch_hook"],
    })


GDOI_KEK_Attr = _attribute_class("GDOI_KEK_Attr", C.KEK_ATTRIBUTES, C.KEK_TLV_ATTRIBUTES)
GDOI_GAP_Attr = _attribute_class("GDOI_GAP_Attr", C.GAP_ATTRIBUTES, C.GAP_TLV_ATTRIBUTES)
GDOI_IPsec_Attr = _attribute_class("GDOI_IPsec_Attr", C.IPSEC_SA_ATTRIBUTES,
                                   numeric_tlv=(2, 12))

def _kd_attribute_class(name, kd_type):
    # Key packet attributes are TLV except the few KD_TV_ATTRIBUTES (RFC 6407 §5.6).
    tv_types = frozenset(t for (kind, t) in C.KD_TV_ATTRIBUTES if kind == kd_type)
    return _attribute_class(name, C.KD_ATTRIBUTES[kd_type], tv_types=tv_types)


GDOI_KD_TEK_Attr = _kd_attribute_class("GDOI_KD_TEK_Attr", C.KD_TEK)
GDOI_KD_KEK_Attr = _kd_attribute_class("GDOI_KD_KEK_Attr", C.KD_KEK)
GDOI_KD_LKH_Attr = _kd_attribute_class("GDOI_KD_LKH_Attr", C.KD_LKH)
GDOI_KD_SID_Attr = _kd_attribute_class("GDOI_KD_SID_Attr", C.KD_SID)

_KD_ATTR_CLASSES = {C.KD_TEK: GDOI_KD_TEK_Attr, C.KD_KEK: GDOI_KD_KEK_Attr,
                    C.KD_LKH: GDOI_KD_LKH_Attr, C.KD_SID: GDOI_KD_SID_Attr}


def find_attr(attrs, attr_type):
    """The first attribute of *attr_type* (name or number) in *attrs*, or None."""
    for attr in attrs or ():
        if not isinstance(attr, GDOI_Attribute):
            continue
        if attr.type == attr_type or attr.type_name == attr_type:
            return attr
    return None


def attr_value(attrs, attr_type):
    """The value (:attr:`GDOI_Attribute.val`) of *attr_type* in *attrs*, or None."""
    attr = find_attr(attrs, attr_type)
    return None if attr is None else attr.val


def _attr_list_length(fixed):
    """length_from for a trailing attribute list: what the payload length leaves."""
    return lambda pkt: max(0, (pkt.length or 0) - fixed(pkt))


# -- Payloads ---------------------------------------------------------------------------

def _inside_sa(pkt):
    """Whether *pkt* belongs to a chain held in a field (the SA's sub-payloads)."""
    while pkt is not None:
        if pkt.parent is not None:
            return True
        pkt = pkt.underlayer
    return False


class _GDOIChain(Packet):
    """Payload dispatch by Next Payload, in the GDOI table (not scapy's ISAKMP one).

    Inside a message the header speaks for the whole chain in ``summary()``
    ("GDOI GROUPKEY-PUSH seq=7 KEK 0x..."); a payload on its own describes itself.
    """
    show_summary = False

    def mysummary(self):
        if _enclosing_header(self) is not None:
            return ""
        return self._describe()

    def _describe(self):
        return self.name

    def guess_payload_class(self, payload):
        inside_sa = _inside_sa(self)
        if self.next_payload == C.PT_NONE:
            # After the last top-level payload only the encryption padding remains
            # (RFC 2408 §3.1: Length includes it); inside an SA it is junk.
            return conf.raw_layer if inside_sa else conf.padding_layer
        if inside_sa:
            return _sa_member_class(self.next_payload)
        return GDOI_PAYLOAD_CLASSES.get(self.next_payload, GDOI_Payload)

    def default_payload_class(self, payload):
        return self.guess_payload_class(payload)


class GDOI_Payload(_GDOIChain):
    """Generic ISAKMP payload header (RFC 2408 §3.2) with an opaque body.

    Subclasses append their fields, the last of which runs to the end of the
    Payload Length; a subclass whose lengths do not fit the bytes (``min_length``,
    ``_fits``) is dissected as this generic payload instead, so no field ever reads
    past the declared length (RFC 2408 §3.2).
    """
    name = "GDOI payload"
    show_indent = 0
    fields_desc = [
        ByteEnumField("next_payload", None, C.GDOI_PAYLOAD_TYPES),
        ByteField("res", 0),
        ShortField("length", None),
        XStrLenField("load", b"", length_from=lambda pkt: max(0, (pkt.length or 0) - 4)),
    ]
    #: smallest valid Payload Length of this payload type
    min_length = 4

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Scapy only calls a dispatch_hook found in the class's own __dict__.
        if "dispatch_hook" not in cls.__dict__:
            cls.dispatch_hook = classmethod(GDOI_Payload.__dict__["dispatch_hook"].__func__)

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if _pkt is None:
            return cls
        if len(_pkt) < 4:
            return conf.raw_layer
        length = struct.unpack("!H", _pkt[2:4])[0]
        if length < cls.min_length or length > len(_pkt) or not cls._fits(_pkt[:length]):
            return GDOI_Payload
        return cls

    @classmethod
    def _fits(cls, body):
        """Whether *body* (exactly Payload Length octets) has this payload's layout."""
        return True

    def post_build(self, pkt, pay):
        if self.length is None:
            pkt = pkt[:2] + struct.pack("!H", len(pkt)) + pkt[4:]
        return pkt + pay



def _payload_header():
    return GDOI_Payload.fields_desc[:3]


def _rest_of_payload(name, before):
    """A field holding what Payload Length leaves after *before* octets."""
    return XStrLenField(name, b"", length_from=lambda pkt: max(0, (pkt.length or 0) - before))


def payload_type_of(pkt):
    """The Next Payload number that announces *pkt*'s class (None when unknown)."""
    for klass in type(pkt).__mro__:
        if klass in _PAYLOAD_TYPES_BY_CLASS:
            return _PAYLOAD_TYPES_BY_CLASS[klass]
    return None


# ISAKMP payloads as GDOI uses them (RFC 6407 §5, RFC 2408 §3) ----------------------------

class GDOI_HASH(GDOI_Payload):
    name = "GDOI HASH"
    fields_desc = _payload_header() + [_rest_of_payload("hash", 4)]


class GDOI_SIG(GDOI_Payload):
    name = "GDOI SIG"
    fields_desc = _payload_header() + [_rest_of_payload("sig", 4)]


class GDOI_NONCE(GDOI_Payload):
    name = "GDOI NONCE"
    fields_desc = _payload_header() + [_rest_of_payload("nonce", 4)]


class GDOI_KE(GDOI_Payload):
    name = "GDOI KE"
    fields_desc = _payload_header() + [_rest_of_payload("ke", 4)]


class GDOI_VENDOR_ID(GDOI_Payload):
    name = "GDOI VENDOR ID"
    fields_desc = _payload_header() + [_rest_of_payload("vendor_id", 4)]


class GDOI_POP(GDOI_Payload):
    """Proof of Possession (RFC 3547 §5.8; removed by RFC 6407), kept opaque."""
    name = "GDOI POP"


class GDOI_SEQ(GDOI_Payload):
    """Sequence Number payload (RFC 6407 §5.7): the rekey counter."""
    name = "GDOI SEQ"
    min_length = C.SEQ_PAYLOAD_LEN
    fields_desc = _payload_header() + [IntField("seq", 0)]

    @classmethod
    def _fits(cls, body):
        return len(body) == C.SEQ_PAYLOAD_LEN

    def _describe(self):
        return self.sprintf("SEQ %seq%")


class GDOI_ID(GDOI_Payload):
    """Identification payload, IPsec DOI form (RFC 2407 §4.6.2): group or member ID."""
    name = "GDOI ID"
    min_length = 8
    fields_desc = _payload_header() + [
        ByteEnumField("id_type", C.ID_IPV4_ADDR, C.ID_TYPES),
        ByteField("protocol", 0),
        ShortField("port", 0),
        IdentDataField("id_data", b"", "id_type",
                       length_from=lambda pkt: max(0, (pkt.length or 0) - 8)),
    ]

    def _describe(self):
        return self.sprintf("ID %id_type% %id_data%")


class GDOI_CERT(GDOI_Payload):
    """Certificate payload (RFC 2408 §3.9), allowed in GROUPKEY-PUSH (RFC 6407 §4)."""
    name = "GDOI CERT"
    min_length = 5
    fields_desc = _payload_header() + [
        ByteEnumField("cert_encoding", 4, C.CERT_ENCODINGS),
        _rest_of_payload("cert_data", 5),
    ]


class GDOI_DELETE(GDOI_Payload):
    """Delete payload (RFC 2408 §3.15); deleting the KEK uses 16-octet SPIs (RFC 6407 §4.4)."""
    name = "GDOI DELETE"
    min_length = 12
    fields_desc = _payload_header() + [
        IntEnumField("doi", C.DOI_GDOI, C.DOI_NAMES),
        ByteEnumField("protocol_id", 1, C.PROTOCOL_IDS),
        FieldLenField("spi_size", None, length_of="spis", fmt="B",
                      adjust=lambda pkt, x: len(pkt.spis[0]) if pkt.spis else 0),
        FieldLenField("num_spis", None, count_of="spis", fmt="H"),
        FieldListField("spis", [], XStrLenField("", b"", length_from=lambda pkt: pkt.spi_size),
                       count_from=lambda pkt: pkt.num_spis),
    ]

    def __init__(self, _pkt=b"", *args, **fields):
        # TEK SPIs are numbers elsewhere (GDOI_SAT.spi): take them as 4 octets here.
        if not _pkt and "spis" in fields:
            fields["spis"] = [s.to_bytes(4, "big") if isinstance(s, int) else s
                              for s in fields["spis"]]
        super().__init__(_pkt, *args, **fields)

    def self_build(self):
        if len({len(spi) for spi in self.spis}) > 1 and self.spi_size is None:
            raise ValueError("one DELETE payload carries SPIs of one size (RFC 2408 §3.15)")
        return super().self_build()

    @classmethod
    def _fits(cls, body):
        spi_size, count = body[9], struct.unpack("!H", body[10:12])[0]
        return len(body) == 12 + spi_size * count


class GDOI_NOTIFY(GDOI_Payload):
    """Notification payload (RFC 2408 §3.14)."""
    name = "GDOI NOTIFY"
    min_length = 12
    fields_desc = _payload_header() + [
        IntEnumField("doi", C.DOI_GDOI, C.DOI_NAMES),
        ByteEnumField("protocol_id", 1, C.PROTOCOL_IDS),
        FieldLenField("spi_size", None, length_of="spi", fmt="B"),
        ShortEnumField("notify_type", 0, C.NOTIFY_TYPES),
        XStrLenField("spi", b"", length_from=lambda pkt: pkt.spi_size),
        XStrLenField("notify_data", b"",
                     length_from=lambda pkt: max(0, (pkt.length or 0) - 12 - pkt.spi_size)),
    ]

    @classmethod
    def _fits(cls, body):
        return 12 + body[9] <= len(body)


# Key Download (RFC 6407 §5.6) -----------------------------------------------------------

class GDOI_KeyPacket(Packet):
    """One key packet of a Key Download payload (RFC 6407 §5.6.1).

    KD Length covers the whole key packet; the attributes are named after the
    key packet type (TEK, KEK, LKH, SID).
    """
    name = "GDOI key packet"
    fields_desc = [
        ByteEnumField("kd_type", C.KD_TEK, C.KD_TYPES),
        ByteField("res", 0),
        ShortField("kd_length", None),
        FieldLenField("spi_size", None, length_of="spi", fmt="B"),
        XStrLenField("spi", b"", length_from=lambda pkt: pkt.spi_size),
        PacketListField(
            "attrs", [], GDOI_KD_TEK_Attr,
            length_from=lambda pkt: max(0, (pkt.kd_length or 0) - 5 - (pkt.spi_size or 0)),
            next_cls_cb=lambda pkt, lst, cur, remain: (
                _KD_ATTR_CLASSES.get(pkt.kd_type, GDOI_KD_TEK_Attr) if remain else None)),
    ]

    def do_dissect(self, s):
        if len(s) >= 4:
            length = struct.unpack("!H", s[2:4])[0]
            if 5 <= length <= len(s):
                return super().do_dissect(s[:length]) + s[length:]
        return super().do_dissect(s)

    def post_build(self, pkt, pay):
        if self.kd_length is None:
            pkt = pkt[:2] + struct.pack("!H", len(pkt)) + pkt[4:]
        return pkt + pay

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf("%kd_type% key packet SPI 0x") + bytes(self.spi or b"").hex()


class GDOI_KD(GDOI_Payload):
    """Key Download payload (RFC 6407 §5.6): the keys for the SAK / SATs of the SA."""
    name = "GDOI KD"
    min_length = 8
    fields_desc = _payload_header() + [
        FieldLenField("num_packets", None, count_of="key_packets", fmt="H"),
        ShortField("res2", 0),
        PacketListField("key_packets", [], GDOI_KeyPacket,
                        length_from=lambda pkt: max(0, (pkt.length or 0) - 8)),
    ]

    @classmethod
    def _fits(cls, body):
        # Every key packet must end inside the payload.
        offset = 8
        while offset < len(body):
            if offset + 4 > len(body):
                return False
            kd_length = struct.unpack("!H", body[offset + 2:offset + 4])[0]
            if kd_length < 5 or offset + kd_length > len(body):
                return False
            offset += kd_length
        return True


# The GDOI SA and its sub-payloads (RFC 6407 §5.1-§5.4) ----------------------------------

def _sak_fixed_length(pkt):
    return 33 + (pkt.src_id_len or 0) + (pkt.dst_id_len or 0)


class GDOI_SAK(GDOI_Payload):
    """SA KEK (RFC 6407 §5.3): the rekey SA -- where pushes come from, the KEK SPI, policy."""
    name = "GDOI SA KEK"
    min_length = 33
    fields_desc = _payload_header() + [
        ByteField("protocol", 17),
        ByteEnumField("src_id_type", C.ID_IPV4_ADDR, C.ID_TYPES),
        ShortField("src_id_port", 0),
        FieldLenField("src_id_len", None, length_of="src_id", fmt="B"),
        IdentDataField("src_id", b"\x00" * 4, "src_id_type", length_from=lambda pkt: pkt.src_id_len),
        ByteEnumField("dst_id_type", C.ID_IPV4_ADDR, C.ID_TYPES),
        ShortField("dst_id_port", 0),
        FieldLenField("dst_id_len", None, length_of="dst_id", fmt="B"),
        IdentDataField("dst_id", b"\x00" * 4, "dst_id_type", length_from=lambda pkt: pkt.dst_id_len),
        XStrFixedLenField("spi", b"\x00" * C.KEK_SPI_LEN, C.KEK_SPI_LEN),
        # RFC 6407: RESERVED2 (4 octets); RFC 3547: POP Algorithm (2) + POP Key Length (2).
        XIntField("res2", 0),
        PacketListField("attrs", [], GDOI_KEK_Attr, length_from=_attr_list_length(_sak_fixed_length)),
    ]

    @classmethod
    def _fits(cls, body):
        n1 = body[8]
        if 9 + n1 + 4 > len(body):
            return False
        n2 = body[9 + n1 + 3]
        return 33 + n1 + n2 <= len(body) and _attributes_fit(body[33 + n1 + n2:])

    def _describe(self):
        return "SA KEK SPI 0x" + bytes(self.spi).hex()


class GDOI_GAP(GDOI_Payload):
    """Group Associated Policy (RFC 6407 §5.2): ATD, DTD, SENDER_ID_REQUEST, IP-D3P policy."""
    name = "GDOI GAP"
    fields_desc = _payload_header() + [
        PacketListField("attrs", [], GDOI_GAP_Attr, length_from=_attr_list_length(lambda pkt: 4)),
    ]


class GDOI_SAT(GDOI_Payload):
    """SA TEK (RFC 6407 §5.4) with a protocol-specific body this package does not decode."""
    name = "GDOI SA TEK"
    match_subclass = True
    min_length = 5
    fields_desc = _payload_header() + [
        ByteEnumField("protocol_id", C.TEK_PROTO_ESP, C.SAT_PROTOCOL_IDS),
        _rest_of_payload("tek", 5),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        chosen = GDOI_Payload.__dict__["dispatch_hook"].__func__(cls, _pkt, *args, **kargs)
        if chosen is not cls or _pkt is None or cls is not GDOI_SAT:
            return chosen
        if _pkt[4] in (C.TEK_PROTO_ESP, C.TEK_PROTO_AH):
            length = struct.unpack("!H", _pkt[2:4])[0]
            encoding = get_encoding() or detect_sat_encoding(_pkt[:length])
            if encoding is not None and _SAT_CLASSES[encoding]._fits(_pkt[:length]):
                return _SAT_CLASSES[encoding]
        return cls


def _ipsec_sat_fields(id_len_fmt):
    """ESP/AH TEK body (RFC 6407 §5.4.1); only the ID Data Length width differs by encoding."""
    id_len = 1 if id_len_fmt == "B" else 2
    # header 4, Protocol-ID 1, Protocol 1; per ID: Type 1, Port 2, Length; Transform 1, SPI 4
    fixed = lambda pkt: 6 + 2 * (3 + id_len) + (pkt.src_id_len or 0) + (pkt.dst_id_len or 0) + 5
    return _payload_header() + [
        ByteEnumField("protocol_id", C.TEK_PROTO_ESP, C.SAT_PROTOCOL_IDS),
        ByteField("protocol", 0),
        ByteEnumField("src_id_type", C.ID_IPV4_ADDR_SUBNET, C.ID_TYPES),
        ShortField("src_id_port", 0),
        FieldLenField("src_id_len", None, length_of="src_id", fmt=id_len_fmt),
        IdentDataField("src_id", b"\x00" * 8, "src_id_type", length_from=lambda pkt: pkt.src_id_len),
        ByteEnumField("dst_id_type", C.ID_IPV4_ADDR_SUBNET, C.ID_TYPES),
        ShortField("dst_id_port", 0),
        FieldLenField("dst_id_len", None, length_of="dst_id", fmt=id_len_fmt),
        IdentDataField("dst_id", b"\x00" * 8, "dst_id_type", length_from=lambda pkt: pkt.dst_id_len),
        MultiEnumField("transform_id", 12, {C.TEK_PROTO_ESP: C.ESP_TRANSFORMS,
                                            C.TEK_PROTO_AH: C.AH_TRANSFORMS},
                       depends_on=lambda pkt: pkt.protocol_id, fmt="B"),
        XIntField("spi", 0),
        PacketListField("attrs", [], GDOI_IPsec_Attr, length_from=_attr_list_length(fixed)),
    ]


def _sat_layout(body, id_len):
    """Parse an ESP/AH SA TEK body with *id_len*-octet ID Data Lengths.

    Returns None when the layout does not fit -- both ID blocks, Transform ID and
    SPI must fit and the IPsec SA attributes must end exactly at the end of the
    payload -- else a plausibility score: one point for each ID whose data length
    is the one its ID type implies, one for a known Transform ID, one for a
    non-zero SPI.
    """
    score, offset = 0, 6  # generic header, Protocol-ID, Protocol
    for _side in (0, 1):
        if offset + 3 + id_len > len(body):
            return None
        id_type = body[offset]
        offset += 3  # ID Type, ID Port
        data_len = int.from_bytes(body[offset:offset + id_len], "big")
        offset += id_len + data_len
        score += C.ID_DATA_LENGTHS.get(id_type, data_len) == data_len
    if offset + 5 > len(body) or not _attributes_fit(body[offset + 5:]):
        return None
    transforms = C.AH_TRANSFORMS if body[4] == C.TEK_PROTO_AH else C.ESP_TRANSFORMS
    score += body[offset] in transforms
    score += body[offset + 1:offset + 5] != b"\x00" * 4
    return score


def _sat_layout_fits(body, id_len):
    """Whether an ESP/AH SA TEK body parses with *id_len*-octet ID Data Lengths."""
    return _sat_layout(body, id_len) is not None


def _attributes_fit(data):
    """Whether *data* is a sequence of data attributes ending exactly at its end."""
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            return False
        word, value = struct.unpack("!HH", data[offset:offset + 4])
        offset += 4 if word & C.ATTRIBUTE_FORMAT_TV else 4 + value
    return offset == len(data)


def detect_sat_encoding(body):
    """Pick the encoding of an ESP/AH SA TEK payload from its bytes.

    *body* is the whole sub-payload (generic header included), exactly Payload
    Length octets. Each layout is tried in full (see :func:`_sat_layout`); when only
    one fits it wins; when both fit, the more plausible one (ID lengths that match
    their ID types, a known transform, a non-zero SPI) wins, and RFC 6407 on a tie;
    None when neither fits.
    """
    rfc6407, rfc3547 = _sat_layout(body, 2), _sat_layout(body, 1)
    if rfc6407 is None and rfc3547 is None:
        return None
    if rfc3547 is None or (rfc6407 is not None and rfc6407 >= rfc3547):
        return C.ENCODING_RFC6407
    return C.ENCODING_RFC3547


class GDOI_SAT_IPsec(GDOI_SAT):
    """SA TEK for ESP / AH, RFC 6407 §5.4.1 encoding (2-octet ID Data Length)."""
    name = "GDOI SA TEK (IPsec, RFC 6407)"
    min_length = 21
    fields_desc = _ipsec_sat_fields("H")

    @classmethod
    def _fits(cls, body):
        return _sat_layout_fits(body, 2)

    def _describe(self):
        return self.sprintf("SA TEK %protocol_id% SPI %spi% %transform_id%")


class GDOI_SAT_IPsec_RFC3547(GDOI_SAT):
    """SA TEK for ESP, RFC 3547 encoding (1-octet ID Data Length; Cisco gdoid)."""
    name = "GDOI SA TEK (IPsec, RFC 3547)"
    min_length = 19
    fields_desc = _ipsec_sat_fields("B")

    @classmethod
    def _fits(cls, body):
        return _sat_layout_fits(body, 1)

    _describe = GDOI_SAT_IPsec._describe


_SAT_CLASSES = {C.ENCODING_RFC6407: GDOI_SAT_IPsec, C.ENCODING_RFC3547: GDOI_SAT_IPsec_RFC3547}


def _sa_member_class(payload_type):
    """Only SA KEK, GAP and SA TEK may sit inside an SA (RFC 6407 §5.1); any other
    type there is kept generic (which also bounds the nesting of crafted input)."""
    if payload_type in C.SA_MEMBER_TYPES:
        return GDOI_PAYLOAD_CLASSES[payload_type]
    return GDOI_Payload


def _first_sa_payload(data, _parent=None):
    """Dissect the SA's sub-payload chain, starting with the type the SA header names."""
    first = getattr(_parent, "sa_next_payload", None)
    if not first:
        return conf.raw_layer(data)
    # The parent link tells the chain it lives inside an SA (see _inside_sa).
    return _sa_member_class(first)(data, _parent=_parent)


def _enclosing_header(pkt):
    while pkt is not None and not isinstance(pkt, ISAKMP):
        pkt = pkt.underlayer or getattr(pkt, "parent", None)
    return pkt


class GDOI_SA(GDOI_Payload):
    """GDOI Security Association payload (RFC 6407 §5.1).

    ``payloads`` holds the SA KEK / GAP / SA TEK chain that the Payload Length
    covers; ``sa_next_payload`` (2 octets) names its first member.
    """
    name = "GDOI SA"
    min_length = 16
    fields_desc = _payload_header() + [
        IntEnumField("doi", C.DOI_GDOI, C.DOI_NAMES),
        IntField("situation", C.GDOI_SITUATION),
        ShortEnumField("sa_next_payload", None, C.GDOI_PAYLOAD_TYPES),
        XShortField("res2", 0),
        PacketLenField("payloads", None, _first_sa_payload,
                       length_from=lambda pkt: max(0, (pkt.length or 0) - 16)),
    ]

    def __init__(self, _pkt=b"", *args, **fields):
        # A list of sub-payloads is chained in order, as "/" would.
        members = fields.get("payloads")
        if isinstance(members, (list, tuple)):
            chain = None
            for member in members:
                chain = member.copy() if chain is None else chain / member.copy()
            fields["payloads"] = chain
        super().__init__(_pkt, *args, **fields)

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        header = _enclosing_header(kargs.get("_underlayer"))
        exchange = getattr(header, "exch_type", None)
        if exchange is not None and exchange not in C.GDOI_SA_EXCHANGES:
            # Phase 1 with DOI 2 keeps the ISAKMP proposal layout (RFC 6407 §3).
            return GDOI_SA_Phase1.dispatch_hook(_pkt, *args, **kargs)
        return GDOI_Payload.__dict__["dispatch_hook"].__func__(cls, _pkt, *args, **kargs)

    def post_build(self, pkt, pay):
        if self.sa_next_payload is None:
            first = payload_type_of(self.payloads) if self.payloads is not None else None
            pkt = pkt[:12] + struct.pack("!H", first or 0) + pkt[14:]
        return super().post_build(pkt, pay)

    def sub_payloads(self):
        """The SA KEK / GAP / SA TEK sub-payloads, in order."""
        found, layer = [], self.payloads
        while isinstance(layer, GDOI_Payload):
            found.append(layer)
            layer = layer.payload
        return found


def _phase1_proposals(data, _parent=None):
    """Scapy's ISAKMP proposal/transform chain; bytes it cannot rebuild stay Raw.

    Scapy's transform attribute list re-encodes values (it drops leading zero
    octets of TLV values and can raise on short ones), so a chain whose rebuild
    would differ from the wire is kept as Raw rather than altered.
    """
    try:
        proposal = ISAKMP_payload_Proposal(data)
        if bytes(proposal) == data:
            return proposal
    except Exception:  # scapy's ISAKMP dissector raises on some malformed input
        pass
    return conf.raw_layer(data)


class GDOI_SA_Phase1(GDOI_Payload):
    """SA payload of IKEv1 phase 1 with DOI 2: ISAKMP proposals (RFC 2408 §3.4)."""
    name = "GDOI SA (phase 1)"
    min_length = 12
    fields_desc = _payload_header() + [
        IntEnumField("doi", C.DOI_GDOI, C.DOI_NAMES),
        IntField("situation", 0),
        PacketLenField("prop", conf.raw_layer(), _phase1_proposals,
                       length_from=lambda pkt: max(0, (pkt.length or 0) - 12)),
    ]


# -- The header --------------------------------------------------------------------------

class GDOI(ISAKMP):
    """ISAKMP header (RFC 2408 §3.1) with GDOI exchange and payload names.

    For GROUPKEY-PUSH and the RFC 8263 ACK the two cookies are the KEK SPI
    (RFC 6407 §4). With the E flag set the body stays ``Raw`` until decrypted.
    ``pkt[ISAKMP]`` finds it too.
    """
    name = "GDOI"
    match_subclass = True
    fields_desc = [
        XStrFixedLenField("init_cookie", b"\x00" * C.ISAKMP_COOKIE_LEN, C.ISAKMP_COOKIE_LEN),
        XStrFixedLenField("resp_cookie", b"\x00" * C.ISAKMP_COOKIE_LEN, C.ISAKMP_COOKIE_LEN),
        ByteEnumField("next_payload", None, C.GDOI_PAYLOAD_TYPES),
        XByteField("version", C.ISAKMP_VERSION),
        ByteEnumField("exch_type", 0, C.GDOI_EXCHANGE_TYPES),
        FlagsField("flags", 0, 8, ["encryption", "commit", "auth_only"]),
        XIntField("id", 0),
        IntField("length", None),
    ]

    @property
    def spi(self):
        """The cookie pair: the KEK SPI of a GROUPKEY-PUSH (RFC 6407 §4.1)."""
        return bytes(self.init_cookie) + bytes(self.resp_cookie)

    @property
    def encrypted(self):
        return bool(self.flags & C.FLAG_ENCRYPTION)

    def guess_payload_class(self, payload):
        if self.encrypted:
            return conf.raw_layer
        if self.next_payload == C.PT_NONE:
            return conf.raw_layer
        return GDOI_PAYLOAD_CLASSES.get(self.next_payload, GDOI_Payload)

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        # Fewer octets than a header (RFC 2408 §3.1) is not a message: keep it Raw.
        if _pkt and len(_pkt) < C.ISAKMP_HEADER_LEN:
            return conf.raw_layer
        return cls

    def answers(self, other):
        """An RFC 8263 ACK answers the GROUPKEY-PUSH with the same KEK SPI and SEQ;
        a rekey answers nothing (RFC 8263 §3); other exchanges as in ISAKMP."""
        if not isinstance(other, ISAKMP):
            return 0
        if self.exch_type == C.EXCH_GROUPKEY_PUSH:
            return 0
        if self.exch_type == C.EXCH_GROUPKEY_PUSH_ACK:
            if other.exch_type != C.EXCH_GROUPKEY_PUSH:
                return 0
            if self.spi != bytes(other.init_cookie) + bytes(other.resp_cookie):
                return 0
            mine, theirs = self.getlayer(GDOI_SEQ), other.getlayer(GDOI_SEQ)
            return int(mine is None or theirs is None or mine.seq == theirs.seq)
        return ISAKMP.answers(self, other)

    def mysummary(self):
        exchange = C.GDOI_EXCHANGE_TYPES.get(self.exch_type, str(self.exch_type))
        parts = ["GDOI", exchange]
        seq = self.getlayer(GDOI_SEQ)
        if seq is not None:
            parts.append("seq=%d" % seq.seq)
        if self.exch_type in (C.EXCH_GROUPKEY_PUSH, C.EXCH_GROUPKEY_PUSH_ACK,
                              C.EXCH_CISCO_REKEY_ACK):
            parts.append("KEK 0x" + self.spi.hex())
        elif self.exch_type == C.EXCH_GROUPKEY_PULL:
            parts.append("M-ID 0x%08x" % self.id)
        if self.encrypted:
            parts.append("(encrypted)")
        return " ".join(parts)


# -- Editing dissected messages ---------------------------------------------------------------

#: Fields that building computes when they are None.
_COMPUTED_FIELDS = ("length", "src_id_len", "dst_id_len", "kd_length", "spi_size",
                    "num_packets", "num_spis", "af", "len", "chksum", "plen")


def _layers_within(pkt):
    """Every layer of *pkt*: its payload chain and the packets held in its fields."""
    while pkt is not None and not isinstance(pkt, NoPayload):
        yield pkt
        for field in pkt.packetfields:
            held = pkt.fields.get(field.name)
            for member in (held if isinstance(held, list) else [held]):
                if isinstance(member, Packet):
                    yield from _layers_within(member)
        pkt = pkt.payload


def clear_lengths(pkt):
    """A copy of *pkt* whose computed fields are None again, so ``bytes()`` recomputes them.

    A dissected message keeps every length and next-payload value it was read with;
    after editing a variable-size field (an ID, a key, an attribute, adding or
    removing a payload) those are stale -- and GDOI nests four levels of them
    (header, SA, sub-payload, ID length). This clears the lengths, counts, AF bits,
    ``sa_next_payload`` and each Next Payload that the following payload's class
    determines (an unknown payload type keeps its number), plus the IP/UDP lengths
    and checksums of the layers below; the CBC padding of a decrypted message is
    dropped (encrypting pads again).
    """
    copy = pkt.copy()
    for layer in _layers_within(copy):
        stale = [name for name in _COMPUTED_FIELDS if name in layer.fields]
        if "next_payload" in layer.fields and layer.overloaded_fields.get("next_payload"):
            stale.append("next_payload")
        if isinstance(layer, GDOI_SA) and payload_type_of(layer.payloads) is not None:
            stale.append("sa_next_payload")
        for name in stale:
            layer.delfieldval(name)
        if isinstance(layer, _GDOIChain) and isinstance(layer.payload, conf.padding_layer):
            layer.remove_payload()  # old CBC padding; encryption pads again
    copy.clear_cache()  # dissected layers otherwise rebuild from their cached bytes
    return copy


# -- Bindings ------------------------------------------------------------------------------

GDOI_PAYLOAD_CLASSES = {
    C.PT_SA: GDOI_SA,
    C.PT_KE: GDOI_KE,
    C.PT_ID: GDOI_ID,
    C.PT_CERT: GDOI_CERT,
    C.PT_HASH: GDOI_HASH,
    C.PT_SIG: GDOI_SIG,
    C.PT_NONCE: GDOI_NONCE,
    C.PT_NOTIFY: GDOI_NOTIFY,
    C.PT_DELETE: GDOI_DELETE,
    C.PT_VENDOR_ID: GDOI_VENDOR_ID,
    C.PT_SAK: GDOI_SAK,
    C.PT_SAT: GDOI_SAT,
    C.PT_KD: GDOI_KD,
    C.PT_SEQ: GDOI_SEQ,
    C.PT_POP: GDOI_POP,
    C.PT_GAP: GDOI_GAP,
}
_PAYLOAD_TYPES_BY_CLASS = {cls: number for number, cls in GDOI_PAYLOAD_CLASSES.items()}
_PAYLOAD_TYPES_BY_CLASS.update({GDOI_SA_Phase1: C.PT_SA, GDOI_SAT_IPsec: C.PT_SAT,
                                GDOI_SAT_IPsec_RFC3547: C.PT_SAT})

# UDP 848 in both directions (RFC 6407 §2); scapy's own UDP 500 ISAKMP is untouched.
bind_bottom_up(UDP, GDOI, dport=C.GDOI_UDP_PORT)
bind_bottom_up(UDP, GDOI, sport=C.GDOI_UDP_PORT)
bind_top_down(UDP, GDOI, dport=C.GDOI_UDP_PORT, sport=C.GDOI_UDP_PORT)

# Building with "/" fills each Next Payload from the class that follows it.
for _cls, _number in _PAYLOAD_TYPES_BY_CLASS.items():
    bind_top_down(GDOI, _cls, next_payload=_number)
    bind_top_down(GDOI_Payload, _cls, next_payload=_number)
del _cls, _number
