# SPDX-License-Identifier: GPL-2.0-only
"""Byte-level view of an ISAKMP/GDOI message: the 28-octet header and the generic
payload chain (RFC 2408 §3.1, §3.2).

Signatures and ACK hashes cover payloads *exactly as sent* (facts §4.3, DECISIONS.md
§2), so the crypto code works on these raw slices rather than on re-built layers;
the capture analyser also uses them to triage frames cheaply before full dissection.
"""
import struct

from scapy_gdoi import _consts as C

# Layout of RFC 2408 §3.1 / §3.2 (sizes from _consts).
HEADER_LEN = C.ISAKMP_HEADER_LEN
COOKIE_LEN = C.ISAKMP_COOKIE_LEN
KEK_SPI_LEN = C.KEK_SPI_LEN
#: Header offsets: two cookies, Next Payload, Version, then these.
EXCH_TYPE_OFFSET, FLAGS_OFFSET, LENGTH_OFFSET = 18, 19, 24
GENERIC_PAYLOAD_HEADER_LEN = C.GENERIC_PAYLOAD_HEADER_LEN
PAYLOAD_LENGTH_OFFSET = 2  # in a generic payload header: Next Payload, RESERVED, Length
_HEADER = struct.Struct("!8s8sBBBBII")


class WireError(ValueError):
    """The bytes are not a well-formed ISAKMP message (message says why)."""


class Header:
    """The fields of an ISAKMP header, parsed from bytes (RFC 2408 §3.1)."""

    __slots__ = ("init_cookie", "resp_cookie", "next_payload", "version", "exch_type",
                 "flags", "id", "length")

    def __init__(self, data):
        if len(data) < HEADER_LEN:
            raise WireError("truncated ISAKMP header: %d of %d octets" % (
                len(data), HEADER_LEN))
        (self.init_cookie, self.resp_cookie, self.next_payload, self.version,
         self.exch_type, self.flags, self.id, self.length) = _HEADER.unpack_from(data)

    @property
    def spi(self):
        """The 16 cookie octets; for GROUPKEY-PUSH and ACKs this is the KEK SPI."""
        return self.init_cookie + self.resp_cookie

    @property
    def encrypted(self):
        return bool(self.flags & C.FLAG_ENCRYPTION)


def with_header_fields(message, flags=None, length=None):
    """`message` with the header's flags and/or length replaced (bytes)."""
    out = bytearray(message)
    if flags is not None:
        out[FLAGS_OFFSET] = flags
    if length is not None:
        struct.pack_into("!I", out, LENGTH_OFFSET, length)
    return bytes(out)


def iter_payloads(first_type, body):
    """Yield (payload_type, offset, payload_bytes) along a generic payload chain.

    `body` is what follows the header; the walk stops at Next Payload 0 and leaves any
    trailing octets (the zero padding of an encrypted body) alone. Raises WireError on
    a payload whose length is below 4 or runs past the end.
    """
    ptype, offset = first_type, 0
    while ptype != C.PT_NONE:
        if offset + GENERIC_PAYLOAD_HEADER_LEN > len(body):
            raise WireError("payload %s at offset %d is truncated" % (
                C.GDOI_PAYLOAD_TYPES.get(ptype, ptype), offset))
        next_type = body[offset]
        (length,) = struct.unpack_from("!H", body, offset + PAYLOAD_LENGTH_OFFSET)
        if length < GENERIC_PAYLOAD_HEADER_LEN or offset + length > len(body):
            raise WireError("payload %s at offset %d has a bad length %d (%d octets left)"
                            % (C.GDOI_PAYLOAD_TYPES.get(ptype, ptype), offset, length,
                               len(body) - offset))
        yield ptype, offset, body[offset:offset + length]
        ptype, offset = next_type, offset + length


def payload_map(first_type, body):
    """{payload_type: [payload_bytes, ...]} for a plaintext body, plus the end offset."""
    found, end = {}, 0
    for ptype, offset, data in iter_payloads(first_type, body):
        found.setdefault(ptype, []).append(data)
        end = offset + len(data)
    return found, end
