# SPDX-License-Identifier: GPL-2.0-only
"""GROUPKEY-PUSH acknowledgements: RFC 8263 ACKs and the Cisco-proprietary rekey ACK.

RFC 8263 ACK (layout and numbers per DECISIONS.md §2)::

    HDR (cookies = KEK SPI of the acknowledged PUSH, exchange 35, flags 0, M-ID 0),
    HASH, SEQ (the acknowledged SEQ), ID (the member)

* :func:`build_ack` makes one for a received rekey from a member identity;
* :func:`parse_ack` reads one from bytes (payloads kept exactly as sent);
* :func:`verify_ack` recomputes the HASH with :func:`scapy_gdoi.crypto.ack_hash` (the only
  place that knows the recipe) and compares in constant time;
* :func:`ack_matches` pairs an ACK with its rekey (same KEK SPI, same SEQ).

The Cisco unicast rekey ACK is undocumented: per DECISIONS.md §2 it is a KEK-encrypted
message whose cookies are the KEK SPI, recognised by the exchange type
``EXCH_CISCO_REKEY_ACK``; :func:`decrypt_cisco_ack` opens it with the KEK and
:func:`open_cisco_ack` also checks that it holds exactly SEQ + ID. It has no HASH, so
that structure check is all the proof it offers (reported as "unverified").
"""
import hashlib
import ipaddress

from scapy_gdoi import _consts as C
from scapy_gdoi import crypto, wire
from scapy_gdoi.rekey import dissect

#: Outcomes of an ACK HASH check, as the analyser reports them.
HASH_VALID, HASH_INVALID, HASH_UNVERIFIED = "valid", "invalid", "unverified"

#: SEQ payload: generic header + 32-bit SEQ (RFC 6407 §5.7); the value's offset.
SEQ_PAYLOAD_LEN, SEQ_VALUE_OFFSET = C.SEQ_PAYLOAD_LEN, C.GENERIC_PAYLOAD_HEADER_LEN
#: ID payload: generic header, ID Type, 3 octets (RFC 2408 §3.8), then the data.
ID_TYPE_OFFSET, ID_PAYLOAD_MIN_LEN = C.GENERIC_PAYLOAD_HEADER_LEN, C.ID_PAYLOAD_HEADER_LEN

#: ACK HASH length -> hash, used only when the KEK_ACK_REQUESTED value was not seen.
ACK_METHOD_BY_HASH_LENGTH = {hashlib.new(name).digest_size: value
                             for value, name in crypto.ACK_HASH_NAMES.items()}


class AckFormatError(ValueError):
    """The bytes are not an RFC 8263 ACK (the message says what is wrong)."""


class AckInfo:
    """An RFC 8263 ACK as received: SPI, SEQ, member ID, HASH and the raw payloads."""

    __slots__ = ("spi", "seq", "hash", "id_type", "id_data", "seq_bytes", "id_bytes")

    def __init__(self, spi, seq, hash_value, id_type, id_data, seq_bytes, id_bytes):
        self.spi, self.seq, self.hash = spi, seq, hash_value
        self.id_type, self.id_data = id_type, id_data
        self.seq_bytes, self.id_bytes = seq_bytes, id_bytes

    @property
    def member(self):
        """The member identity as text: an address for address ID types, else hex."""
        return member_id_text(self.id_type, self.id_data)


def member_id_text(id_type, id_data):
    """Readable form of an ID payload's data (addresses for ID_IPV4/IPV6_ADDR)."""
    id_data = bytes(id_data)
    try:
        if id_type == C.ID_IPV4_ADDR and len(id_data) == C.ID_DATA_LENGTHS[id_type]:
            return str(ipaddress.IPv4Address(id_data))
        if id_type == C.ID_IPV6_ADDR and len(id_data) == C.ID_DATA_LENGTHS[id_type]:
            return str(ipaddress.IPv6Address(id_data))
    except ValueError:
        pass
    return id_data.hex()


def ack_method_of(method):
    """Normalise an ACK method to its KEK_ACK_REQUESTED value (1, 2, 3).

    Same accepted set as everywhere: :func:`scapy_gdoi.crypto.ack_method_value`.
    """
    return crypto.ack_method_value(method)


def _member_id_payload(member_id):
    from scapy_gdoi.gdoi import GDOI_ID
    if isinstance(member_id, GDOI_ID):
        return member_id.copy()
    address = ipaddress.ip_address(member_id)
    id_type = C.ID_IPV4_ADDR if address.version == 4 else C.ID_IPV6_ADDR
    return GDOI_ID(id_type=id_type, id_data=address.packed)


def build_ack(rekey, member_id, kek, method=None):
    """The RFC 8263 ACK a member sends for a received GROUPKEY-PUSH.

    A member acknowledges only a rekey it accepts: the rekey must be a GROUPKEY-PUSH
    under this KEK (cookies = ``kek.spi``), decrypt to a clean payload chain and, when
    ``kek.public_key`` is known, carry a valid signature (RFC 6407 §4.7). Anything else
    raises, so a tampered or foreign rekey is never acknowledged.

    :param rekey: the PUSH as received (encrypted: it is decrypted with `kek`) or its
        plaintext packet/bytes.
    :param member_id: the member's address (IPv4 / IPv6 text: ID_IPV4_ADDR / ID_IPV6_ADDR)
        or a ready ``GDOI_ID`` payload (e.g. ID_DER_ASN1_DN).
    :param kek: the :class:`~scapy_gdoi.rekey.KEKContext` that protects the rekey.
    :param method: ACK method (any form :func:`ack_method_of` accepts); default: the
        KEK_ACK_REQUESTED of the rekey's SA KEK, then ``kek.ack_method``. A method that
        contradicts the rekey's request raises.
    :returns: a NEW dissected ``GDOI`` packet.
    :raises AckFormatError: not a GROUPKEY-PUSH, or no SEQ payload.
    :raises scapy_gdoi.crypto.GDOICryptoError: another KEK's rekey, a plaintext that is
        not a GDOI message (wrong KEK / altered ciphertext), or a signature that fails.
    """
    from scapy_gdoi.rekey import SIG_VALID, plaintext_problem
    if kek is None:
        raise crypto.GDOICryptoError("no KEK: a rekey can only be acknowledged with the "
                                     "KEK that protects it")
    message = bytes(rekey)
    header = wire.Header(message)
    if header.exch_type != C.EXCH_GROUPKEY_PUSH:
        raise AckFormatError("exchange type %d is not GROUPKEY-PUSH (%d): nothing to "
                             "acknowledge" % (header.exch_type, C.EXCH_GROUPKEY_PUSH))
    if header.spi != kek.spi:
        raise crypto.GDOICryptoError("the rekey's cookies %s are not the KEK SPI %s: it is "
                                     "another KEK's rekey" % (header.spi.hex(), kek.spi.hex()))
    if header.encrypted:
        message = kek.decrypt_bytes(message)
    problem = plaintext_problem(message, kek.cipher.block_size)
    if problem:
        raise crypto.GDOICryptoError("cannot decrypt the rekey with the KEK of SPI %s: %s"
                                     % (kek.spi.hex(), problem))
    if kek.public_key is not None:
        verdict = kek.check_signature(message)
        if verdict != SIG_VALID:
            raise crypto.GDOICryptoError("the rekey's signature is %s: it is not "
                                         "acknowledged" % verdict)
    seq_payloads = [p for t, _, p in wire.iter_payloads(header.next_payload,
                                                         message[wire.HEADER_LEN:])
                    if t == C.PT_SEQ]
    if not seq_payloads:
        raise AckFormatError("the rekey has no SEQ payload to acknowledge")
    seq = int.from_bytes(seq_payloads[0][SEQ_VALUE_OFFSET:SEQ_PAYLOAD_LEN], "big")
    method = _choose_ack_method(method, kek, _requested_ack_method(message, kek.spi))
    return build_ack_for(header.spi, seq, member_id, kek.key, method)


def _requested_ack_method(plain, kek_spi):
    """KEK_ACK_REQUESTED of the decrypted rekey's SA KEK, or None (RFC 8263: the key
    server asks for ACKs there). The SA KEK of the protecting KEK wins; in a KEK roll
    the rekey may describe only the new KEK, whose request then applies."""
    from scapy_gdoi.summary import summarize_bytes
    try:
        policies = summarize_bytes(plain).keks
    except wire.WireError:
        return None
    requested = [p.ack_requested for p in policies if p.ack_requested is not None]
    own = [p.ack_requested for p in policies
           if p.spi == kek_spi and p.ack_requested is not None]
    return (own or requested or [None])[0]


def _choose_ack_method(method, kek, requested):
    """The ACK method: explicit `method`, else the rekey's request, else ``kek.ack_method``.

    An explicit method that contradicts the rekey's KEK_ACK_REQUESTED is refused: the
    key server would reject the ACK (its HASH length and key differ).
    """
    if requested is not None:
        try:
            requested = crypto.ack_method_value(requested)
        except crypto.GDOICryptoError:
            if method is None:
                raise crypto.GDOICryptoError(
                    "the rekey requests ACK method %r (KEK_ACK_REQUESTED), which is not "
                    "one this library knows; pass method= to answer it anyway"
                    % (requested,))
            requested = None  # the caller decides what an unknown request means
    if method is not None:
        method = crypto.ack_method_value(method)
        if requested is not None and method != requested:
            raise crypto.GDOICryptoError(
                "ACK method %s was given, but the rekey requested %s (KEK_ACK_REQUESTED "
                "%d): the key server would reject that ACK" % (
                    crypto.ack_method_label(method), crypto.ack_method_label(requested),
                    requested))
        return method
    if requested is not None:
        return requested
    if kek.ack_method is not None:
        return kek.ack_method
    raise crypto.GDOICryptoError(
        "no ACK method: the rekey carries no KEK_ACK_REQUESTED, the KEKContext has no "
        "ack_method, and no method was given")


def build_ack_for(kek_spi, seq, member_id, kek_key, method):
    """The RFC 8263 ACK for (KEK SPI, SEQ) from `member_id`, keyed with `kek_key`."""
    from scapy_gdoi.gdoi import GDOI, GDOI_HASH, GDOI_SEQ
    method = ack_method_of(method)
    digest_size = hashlib.new(crypto.ACK_HASH_NAMES[method]).digest_size
    kek_spi = bytes(kek_spi)
    # Build with a zero HASH of the final size, then hash SEQ and ID exactly as laid out.
    draft = bytes(GDOI(init_cookie=kek_spi[:wire.COOKIE_LEN],
                       resp_cookie=kek_spi[wire.COOKIE_LEN:],
                       exch_type=C.EXCH_GROUPKEY_PUSH_ACK, flags=0, id=0)
                  / GDOI_HASH(hash=b"\0" * digest_size) / GDOI_SEQ(seq=seq)
                  / _member_id_payload(member_id))
    info = parse_ack(draft)
    value = crypto.ack_hash(kek_key, kek_spi, method, info.seq_bytes, info.id_bytes)
    hash_offset = wire.HEADER_LEN + wire.GENERIC_PAYLOAD_HEADER_LEN
    return dissect(draft[:hash_offset] + value + draft[hash_offset + digest_size:])


def _seq_id_chain(chain, expected, what, qualifier=""):
    """The payload bytes of *chain* when its types are exactly *expected* (ending in
    SEQ, ID) and the SEQ and ID payloads have their sizes; AckFormatError otherwise."""
    types = [ptype for ptype, _, _ in chain]
    if types != list(expected):
        raise AckFormatError("%s are %s, expected %s%s" % (
            what, ", ".join(C.GDOI_PAYLOAD_TYPES.get(t, str(t)) for t in types), qualifier,
            ", ".join(C.GDOI_PAYLOAD_TYPES[t] for t in expected)))
    payloads = [data for _, _, data in chain]
    seq_payload, id_payload = payloads[-2:]
    if len(seq_payload) != SEQ_PAYLOAD_LEN:
        raise AckFormatError("SEQ payload is %d octets, expected %d" % (
            len(seq_payload), SEQ_PAYLOAD_LEN))
    if len(id_payload) < ID_PAYLOAD_MIN_LEN:
        raise AckFormatError("ID payload is %d octets, at least %d expected"
                             % (len(id_payload), ID_PAYLOAD_MIN_LEN))
    return payloads


def parse_ack(message):
    """An :class:`AckInfo` from ACK bytes; AckFormatError when it is not a clean ACK.

    Expects exchange GROUPKEY-PUSH-ACK, no encryption, and exactly HASH, SEQ, ID
    (DECISIONS.md §2).
    """
    message = bytes(message)
    try:
        header = wire.Header(message)
        if header.exch_type != C.EXCH_GROUPKEY_PUSH_ACK:
            raise AckFormatError("exchange type %d is not GROUPKEY-PUSH-ACK (%d)" % (
                header.exch_type, C.EXCH_GROUPKEY_PUSH_ACK))
        if header.encrypted:
            raise AckFormatError("an RFC 8263 ACK is not encrypted, but the E flag is set")
        end = min(len(message), max(header.length, wire.HEADER_LEN))
        if header.length > len(message):
            raise AckFormatError("truncated ACK: header Length %d, got %d octets"
                                 % (header.length, len(message)))
        chain = list(wire.iter_payloads(header.next_payload, message[wire.HEADER_LEN:end]))
    except wire.WireError as exc:
        raise AckFormatError(str(exc))
    hash_payload, seq_payload, id_payload = _seq_id_chain(
        chain, [C.PT_HASH, C.PT_SEQ, C.PT_ID], "ACK payloads")
    return AckInfo(header.spi, int.from_bytes(seq_payload[SEQ_VALUE_OFFSET:], "big"),
                   hash_payload[wire.GENERIC_PAYLOAD_HEADER_LEN:], id_payload[ID_TYPE_OFFSET],
                   id_payload[ID_PAYLOAD_MIN_LEN:], seq_payload, id_payload)


def verify_ack(ack, kek, method=None):
    """True when the ACK's HASH is right for `kek` (a KEKContext); never raises on a bad
    hash. `method` defaults to ``kek.ack_method``, then to the hash its length names.

    :raises scapy_gdoi.crypto.GDOICryptoError: `kek` is None (nothing to verify with).
    """
    info = ack if isinstance(ack, AckInfo) else parse_ack(ack)
    if kek is None:
        raise crypto.GDOICryptoError("no KEK to verify the ACK HASH with (use check_ack "
                                     "for an \"unverified\" verdict)")
    if info.spi != kek.spi:
        return False
    method = method if method is not None else kek.ack_method
    if method is None:
        method = ACK_METHOD_BY_HASH_LENGTH.get(len(info.hash))
        if method is None:
            return False
    expected = crypto.ack_hash(kek.key, kek.spi, method, info.seq_bytes, info.id_bytes)
    return crypto.hashes_equal(expected, info.hash)


def check_ack(info, kek, method=None):
    """"valid" / "invalid" / "unverified" (no KEK known) for a parsed ACK."""
    if kek is None:
        return HASH_UNVERIFIED
    return HASH_VALID if verify_ack(info, kek, method) else HASH_INVALID


def ack_matches(ack, rekey_spi, rekey_seq):
    """Whether an ACK (AckInfo or bytes) acknowledges the rekey (KEK SPI, SEQ)."""
    info = ack if isinstance(ack, AckInfo) else parse_ack(ack)
    return info.spi == bytes(rekey_spi) and info.seq == rekey_seq


# -- Cisco-proprietary rekey ACK (DECISIONS.md §2) ------------------------------------

def is_cisco_ack(message):
    """Whether the message is classified as a Cisco rekey ACK (by its exchange type)."""
    header = message if isinstance(message, wire.Header) else wire.Header(bytes(message))
    return header.exch_type == C.EXCH_CISCO_REKEY_ACK


def decrypt_cisco_ack(message, kek):
    """Decrypt a Cisco rekey ACK with its KEK: a NEW dissected plaintext packet."""
    message = bytes(message)
    header = wire.Header(message)
    if not is_cisco_ack(header):
        raise AckFormatError("exchange type %d is not the Cisco rekey ACK (%d)" % (
            header.exch_type, C.EXCH_CISCO_REKEY_ACK))
    if header.spi != kek.spi:
        raise crypto.GDOICryptoError("cannot decrypt: cookies %s are not the KEK SPI %s"
                                     % (header.spi.hex(), kek.spi.hex()))
    return kek.decrypt(message)


#: Why a Cisco ACK can only be "unverified" (reported next to the verdict).
CISCO_ACK_UNVERIFIED_REASON = (
    "the Cisco rekey ACK has no HASH: it decrypts with the KEK to exactly SEQ + ID, the "
    "only check available (DECISIONS.md §2)")

#: The only payload chain a Cisco rekey ACK may carry (DECISIONS.md §2, project decision).
CISCO_ACK_PAYLOADS = list(C.CISCO_ACK_PAYLOADS)


def open_cisco_ack(message, kek):
    """(SEQ, ID type, ID data) of a Cisco rekey ACK, after the only checks it allows.

    The Cisco ACK is undocumented and carries no HASH and no MAC; it is encrypted with
    the KEK under the KEK's static IV (facts §4.4). Project decision (DECISIONS.md §2):
    the structure check after KEK decryption is the only proof available, so the
    plaintext must be exactly SEQ + ID, a clean chain with less than one block of zero
    padding. Anything else, in particular a GROUPKEY-PUSH relabelled as an ACK (its
    SEQ, SA, KD, SIG chain decrypts cleanly too), is refused.

    :raises AckFormatError: a PUSH / RFC 8263 ACK exchange, not encrypted, or not
        exactly SEQ + ID.
    :raises scapy_gdoi.crypto.GDOICryptoError: no KEK, another KEK's cookies, or the
        plaintext is not a payload chain (wrong KEK or altered ciphertext).
    """
    from scapy_gdoi.rekey import plaintext_problem
    if kek is None:
        raise crypto.GDOICryptoError("no KEK to open the Cisco rekey ACK with")
    message = bytes(message)
    header = wire.Header(message)
    if header.exch_type in (C.EXCH_GROUPKEY_PUSH, C.EXCH_GROUPKEY_PUSH_ACK):
        # Its exchange byte is undocumented (EXCH_CISCO_REKEY_ACK is our decision), so
        # only the two exchanges that mean something else under KEK cookies are refused.
        raise AckFormatError("exchange type %d is a GROUPKEY-PUSH or an RFC 8263 ACK, not "
                             "a Cisco rekey ACK" % header.exch_type)
    if not header.encrypted:
        raise AckFormatError("Cisco rekey ACK without the E flag")
    if header.spi != kek.spi:
        raise crypto.GDOICryptoError("cannot decrypt: cookies %s are not the KEK SPI %s"
                                     % (header.spi.hex(), kek.spi.hex()))
    plain = kek.decrypt_bytes(message)
    problem = plaintext_problem(plain, kek.cipher.block_size)
    if problem:
        raise crypto.GDOICryptoError("cannot decrypt with the KEK of SPI %s: %s"
                                     % (kek.spi.hex(), problem))
    chain = list(wire.iter_payloads(header.next_payload, plain[wire.HEADER_LEN:]))
    seq_payload, id_payload = _seq_id_chain(chain, CISCO_ACK_PAYLOADS,
                                            "Cisco rekey ACK payloads", "exactly ")
    return (int.from_bytes(seq_payload[SEQ_VALUE_OFFSET:], "big"),
            id_payload[ID_TYPE_OFFSET], id_payload[ID_PAYLOAD_MIN_LEN:])


def build_cisco_ack(kek, seq, member_id):
    """A Cisco-style rekey ACK as this project forges it (DECISIONS.md §2): SEQ and ID
    encrypted with the KEK, cookies = KEK SPI, exchange EXCH_CISCO_REKEY_ACK.

    :param kek: the :class:`~scapy_gdoi.rekey.KEKContext` of the acknowledged rekey.
    :param seq: the acknowledged SEQ (int). :param member_id: as for :func:`build_ack`.
    :raises TypeError: arguments of the wrong type (e.g. the order of
        :func:`build_ack`, whose first argument is the rekey).
    """
    from scapy_gdoi.gdoi import GDOI, GDOI_SEQ
    from scapy_gdoi.rekey import KEKContext
    if not isinstance(kek, KEKContext):
        raise TypeError("build_cisco_ack(kek, seq, member_id): kek must be a KEKContext, "
                        "got %s" % type(kek).__name__)
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise TypeError("build_cisco_ack(kek, seq, member_id): seq must be an int, got %s"
                        % type(seq).__name__)
    plain = (GDOI(init_cookie=kek.spi[:wire.COOKIE_LEN], resp_cookie=kek.spi[wire.COOKIE_LEN:],
                  exch_type=C.EXCH_CISCO_REKEY_ACK, flags=0, id=0)
             / GDOI_SEQ(seq=seq) / _member_id_payload(member_id))
    return kek.encrypt(plain)


# -- Key-server side: verify, then hand the verdict to the member table ---------------

def receive_ack(table, message, kek, member_id=None, method=None):
    """Process one ACK at the key server; returns the policy module's ``AckResult``.

    The crypto verdict is made here and passed to
    ``table.ack_received(member, seq, kind, hash_valid)`` of
    :class:`scapy_gdoi.policy.MemberTable`, which decides whether it is recorded:

    * RFC 8263 ACK: ``hash_valid`` is the HASH check (:func:`verify_ack`).
    * Cisco ACK: it has no HASH. Project decision (DECISIONS.md §2): the structure
      check after KEK decryption (:func:`open_cisco_ack`: exactly SEQ + ID) is the only
      proof available, so ``hash_valid`` is True only when it passes; decrypting is not
      enough (a relabelled rekey decrypts too). This is weaker than a HASH: anyone who
      holds the KEK, i.e. every member, can make one for any member ID.

    :param member_id: the member-table key; default: the ACK's ID payload as text.
    :param method: ACK method the key server requested; default ``kek.ack_method``.
    :raises AckFormatError: the message is neither kind of ACK, or has no SEQ.
    :raises scapy_gdoi.crypto.GDOICryptoError: `kek` is None (an ACK cannot be judged
        without the KEK that protects its rekey).
    """
    from scapy_gdoi.policy import ACK_KIND_CISCO, ACK_KIND_RFC8263
    if kek is None:
        raise crypto.GDOICryptoError("no KEK: an ACK can only be checked with the KEK of "
                                     "the rekey it acknowledges")
    message = bytes(message)
    header = wire.Header(message)
    if is_cisco_ack(header):
        kind, hash_valid, seq, member = ACK_KIND_CISCO, False, None, None
        try:
            seq, id_type, id_data = open_cisco_ack(message, kek)
            hash_valid, member = True, member_id_text(id_type, id_data)
        except (AckFormatError, crypto.GDOICryptoError, wire.WireError):
            # Unreadable or not exactly SEQ + ID: the verdict is "bad", under the SEQ
            # the key server expects from this member.
            seq = _expected_seq(table, member_id)
    else:
        info = parse_ack(message)
        kind, seq, member = ACK_KIND_RFC8263, info.seq, info.member
        hash_valid = verify_ack(info, kek, method)
    member = member_id if member_id is not None else member
    if seq is None:
        raise AckFormatError("the ACK carries no readable SEQ")
    return table.ack_received(member, seq, kind, hash_valid)


def _expected_seq(table, member_id):
    try:
        return table.member(member_id).last_seq_sent
    except KeyError:
        return None
