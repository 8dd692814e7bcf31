# SPDX-License-Identifier: GPL-2.0-only
"""Custom Scapy fields for GDOI: identification data and data-attribute values.

Kept apart from the layers so the layers read as a list of RFC figures.
"""

import ipaddress
import socket
import struct

from scapy.fields import ShortField, StrLenField

from scapy_gdoi._consts import ID_ADDRESS_FAMILIES, ID_DATA_LENGTHS, ID_TEXT_TYPES, ID_TYPES

__all__ = ["IdentDataField", "AttrValueField", "AttrDataField", "encode_ident"]


def _parse_address(text, family):
    address = ipaddress.ip_address(text)
    if family is not None and address.version != family:
        raise ValueError("%s is not an IPv%d address" % (text, family))
    return address


def encode_ident(value, id_type=None):
    """Turn a human identity into ID Data bytes for *id_type* (RFC 2407 §4.6.2).

    Address types take ``"10.0.0.1"`` / ``"2001:db8::1"`` (ADDR), ``"10.1.0.0/16"`` or
    ``"10.1.0.0/255.255.0.0"`` (SUBNET: address then mask) and ``"10.0.0.1-10.0.0.9"``
    (RANGE), in the family the type names; FQDN and USER_FQDN take text; an ``int`` is
    a 4-octet KEY_ID (a group number, as gdoid sends); bytes pass unchanged. Without
    *id_type* the shape of the text decides.
    """
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, int):
        return struct.pack("!I", value)
    text = str(value)
    if id_type in ID_TEXT_TYPES or (id_type is not None and id_type not in ID_ADDRESS_FAMILIES):
        return text.encode()
    family = ID_ADDRESS_FAMILIES.get(id_type)
    try:
        if id_type in (4, 6) or (id_type is None and "/" in text):
            addr, mask = text.split("/", 1)
            address = _parse_address(addr, family)
            if mask.isdigit():
                network = ipaddress.ip_network("%s/%s" % (addr, mask), strict=False)
                return address.packed + network.netmask.packed
            return address.packed + _parse_address(mask, address.version).packed
        if id_type in (7, 8) or (id_type is None and "-" in text):
            first, last = text.split("-", 1)
            address = _parse_address(first, family)
            return address.packed + _parse_address(last, address.version).packed
        return _parse_address(text, family).packed
    except ValueError as exc:
        if id_type is None:
            return text.encode()
        raise ValueError("ID data %r does not fit %s: %s"
                         % (text, ID_TYPES.get(id_type, id_type), exc)) from None


def _render_ident(id_type, data):
    """Show ID Data the way the ID type says it is laid out, bytes otherwise."""
    if id_type in ID_TEXT_TYPES:
        text = bytes(data).decode("ascii", "replace")
        return text if text.isprintable() and "\ufffd" not in text else None
    expected = ID_DATA_LENGTHS.get(id_type)
    if expected is None or len(data) != expected:
        return None
    if id_type == 1:
        return socket.inet_ntop(socket.AF_INET, data)
    if id_type == 5:
        return socket.inet_ntop(socket.AF_INET6, data)
    half = len(data) // 2
    family = socket.AF_INET if half == 4 else socket.AF_INET6
    first = socket.inet_ntop(family, data[:half])
    second = socket.inet_ntop(family, data[half:])
    return "%s/%s" % (first, second) if id_type in (4, 6) else "%s-%s" % (first, second)


class IdentDataField(StrLenField):
    """ID Data whose encoding and rendering depend on a sibling ID Type field.

    Text given by the user is kept as text and encoded on build with the ID Type
    the packet has then (so the order of keyword arguments does not matter). The
    machine value is the bytes on the wire, so malformed data (an IPV4_ADDR of 3
    octets) survives a round trip; it is then shown as hex.
    """
    __slots__ = ["type_field"]

    def __init__(self, name, default, type_field, length_from):
        super().__init__(name, default, length_from=length_from)
        self.type_field = type_field

    def any2i(self, pkt, x):
        if isinstance(x, str):
            return x
        return encode_ident(x)

    def i2m(self, pkt, x):
        if isinstance(x, str):
            return encode_ident(x, getattr(pkt, self.type_field, None))
        return super().i2m(pkt, x)

    def i2len(self, pkt, x):
        return len(self.i2m(pkt, x))

    def i2repr(self, pkt, x):
        if x is None or isinstance(x, str):
            return repr(x)
        rendered = _render_ident(getattr(pkt, self.type_field, None), x)
        return rendered if rendered is not None else "0x" + bytes(x).hex()


def _attr_table(pkt):
    return getattr(pkt, "attr_table", {})


class AttrValueField(ShortField):
    """The 16-bit value of a basic (TV) data attribute, shown by name (RFC 2408 §3.3).

    Value names come from the attribute table of the packet class and depend on
    the attribute type, so "KEK_ALG_AES" is shown for KEK_ALGORITHM = 3.
    """

    def _names(self, pkt):
        entry = _attr_table(pkt).get(getattr(pkt, "type", None))
        return entry[1] if entry else {}

    def any2i(self, pkt, x):
        if isinstance(x, str):
            reverse = {name: number for number, name in self._names(pkt).items()}
            if x in reverse:
                return reverse[x]
            raise ValueError("unknown value %r for this attribute" % x)
        return super().any2i(pkt, x)

    def i2repr(self, pkt, x):
        name = self._names(pkt).get(x)
        return "%s (%s)" % (name, x) if name else repr(x)


class AttrDataField(StrLenField):
    """The value of a variable (TLV) data attribute.

    Numbers may be given as ``int``: they are encoded big-endian at the width
    the specification mandates for that attribute (e.g. 4 octets for
    KEK_KEY_LIFETIME and D3P_WINDOW_SIZE), or the minimal width otherwise.
    Numeric attributes are shown as numbers, key material as hex.
    """

    def any2i(self, pkt, x):
        if isinstance(x, int) and not isinstance(x, bool):
            width = getattr(pkt, "tlv_widths", {}).get(getattr(pkt, "type", None))
            width = width or max(1, (x.bit_length() + 7) // 8)
            return x.to_bytes(width, "big")
        return super().any2i(pkt, x)

    def i2repr(self, pkt, x):
        if x is None:
            return repr(x)
        if getattr(pkt, "type", None) in getattr(pkt, "numeric_tlv", ()) and 0 < len(x) <= 8:
            return str(int.from_bytes(x, "big"))
        return "0x" + bytes(x).hex() if x else "b''"
