# SPDX-License-Identifier: GPL-2.0-only
"""GROUPKEY-PUSH (rekey) protection: KEK encryption and the rekey signature.

:class:`KEKContext` holds one KEK (RFC 6407 §5.3 SA KEK + §5.6.2 KEK key packet) and
the group's signing keys; its methods take a packet (or bytes) and return NEW packets:

* ``decrypt(pkt)``: CBC with the static IV from KEK_ALGORITHM_KEY (facts §4.4) → a fully
  dissected plaintext packet (E flag cleared, header length unchanged, zero padding kept).
* ``encrypt(pkt)``: zero-pads the body to the block size, sets E and the padded length.
* ``sign(pkt)`` / ``verify(pkt)``: SIG over ``"rekey" ‖ HDR ‖ payloads before SIG``
  (facts §4.3), HDR with the E flag set. The verifier accepts the header length as
  sent (padded) or unpadded, since gdoid signs the unpadded length but hashes the
  received header.
* ``seal(pkt)`` = sign then encrypt; ``open(pkt)`` = decrypt then verify.

Building a whole GROUPKEY-PUSH from a policy is :func:`scapy_gdoi.forge.forge_push`;
RFC 8263 ACKs are :mod:`scapy_gdoi.ack`.
"""
from scapy_gdoi import _consts as C
from scapy_gdoi import crypto, wire

#: Signature check outcomes, as the analyser reports them.
SIG_VALID, SIG_INVALID, SIG_UNVERIFIED = "valid", "invalid", "unverified"

#: Hashes a verifier tries when it never saw the SIG_HASH_ALGORITHM of the SA KEK
#: (keys given in a keys file). MD5 is left out: only an explicit policy selects it.
CANDIDATE_SIG_HASHES = (C.SIG_HASH_SHA1, C.SIG_HASH_SHA256, C.SIG_HASH_SHA384,
                        C.SIG_HASH_SHA512)


def _as_bytes(pkt):
    return pkt if isinstance(pkt, (bytes, bytearray)) else bytes(pkt)


def dissect(message):
    """A fully dissected GDOI packet from message bytes (imports the layers lazily)."""
    from scapy_gdoi.gdoi import GDOI
    return GDOI(bytes(message))


class KEKContext:
    """One KEK: cipher, key, static IV, and the keys that sign the rekeys it protects.

    :param spi: the 16-octet KEK SPI (the cookies of every PUSH it protects).
    :param algorithm: KEK_ALGORITHM number or "aes" / "3des" / "des".
    :param key: the KEK cipher key; :param iv: the IV part of KEK_ALGORITHM_KEY.
    :param sig_hash: SIG_HASH_ALGORITHM (number or "sha256"...), default SHA-256; None =
        unknown (verification tries SHA-1 and SHA-2, signing refuses).
    :param public_key: verification key (`cryptography` object, DER or PEM bytes).
    :param private_key: signing key (`cryptography` private key), for forging.
    :param ack_method: ACK method (RFC 8263): KEK_ACK_REQUESTED value 1/2/3, IOS name
        "REKEY_ACK_KEK_SHA256" or "sha256"/"SHA-256"..., or None; ValueError otherwise.
    :param digest_info: RSA signing with a DigestInfo (RFC 8017); False = gdoid style.
    :param sign_unpadded_length: sign the header with the unpadded length (gdoid style).
    """

    def __init__(self, spi, algorithm, key, iv, sig_hash=C.SIG_HASH_SHA256,
                 public_key=None, private_key=None, ack_method=None, digest_info=True,
                 sign_unpadded_length=False):
        if len(spi) != wire.KEK_SPI_LEN:
            raise crypto.GDOICryptoError("a KEK SPI is %d octets, got %d" % (
                wire.KEK_SPI_LEN, len(spi)))
        self.spi = bytes(spi)
        self.cipher = crypto.kek_cipher(algorithm)
        self.key = bytes(key)
        self.iv = bytes(iv)
        if len(self.key) not in self.cipher.key_sizes:
            raise crypto.GDOICryptoError("%s key must be %s octets, got %d" % (
                self.cipher.name, " or ".join(map(str, self.cipher.key_sizes)),
                len(self.key)))
        if len(self.iv) != self.cipher.block_size:
            raise crypto.GDOICryptoError("%s IV must be %d octets, got %d" % (
                self.cipher.name, self.cipher.block_size, len(self.iv)))
        self.sig_hash = sig_hash
        if public_key is not None and not hasattr(public_key, "public_numbers"):
            public_key = crypto.load_public_key(public_key)
        if public_key is None and private_key is not None:
            public_key = private_key.public_key()
        self.public_key = public_key
        self.private_key = private_key
        # Validated now (any form crypto.ack_method_value accepts), so a typo fails
        # here rather than at the first ACK.
        self.ack_method = None if ack_method is None else crypto.ack_method_value(ack_method)
        self.digest_info = digest_info
        self.sign_unpadded_length = sign_unpadded_length

    @classmethod
    def from_algorithm_key(cls, spi, algorithm, algorithm_key, key_len=None, **kwargs):
        """Build from a KEK_ALGORITHM_KEY attribute value (IV ‖ key)."""
        cipher = crypto.kek_cipher(algorithm)
        iv, key = cipher.split_algorithm_key(bytes(algorithm_key), key_len)
        return cls(spi, cipher, key, iv, **kwargs)

    @property
    def algorithm_key(self):
        """The KEK_ALGORITHM_KEY attribute value: IV ‖ key."""
        return self.iv + self.key

    def __repr__(self):
        return "<KEKContext spi=%s %s-%d>" % (self.spi.hex(), self.cipher.name,
                                              len(self.key) * 8)

    # -- encryption ----------------------------------------------------------------

    def encrypt_bytes(self, message):
        """Encrypt a plaintext message (bytes): padded body, E flag, padded length."""
        message = _as_bytes(message)
        header = wire.Header(message)
        body = message[wire.HEADER_LEN:_declared_end(header, message)]
        ciphertext = self.cipher.encrypt(self.key, self.iv, body)
        out = wire.with_header_fields(message[:wire.HEADER_LEN],
                                      flags=header.flags | C.FLAG_ENCRYPTION,
                                      length=wire.HEADER_LEN + len(ciphertext))
        return out + ciphertext

    def decrypt_bytes(self, message):
        """Decrypt an encrypted message (bytes) → plaintext bytes, E flag cleared.

        Raises GDOICryptoError ("cannot decrypt: ...") on a message that is not
        encrypted, is truncated, or whose body is not whole cipher blocks.
        """
        message = _as_bytes(message)
        header = wire.Header(message)
        if not header.encrypted:
            raise crypto.GDOICryptoError("cannot decrypt: the E flag is not set")
        end = _declared_end(header, message)
        plaintext = self.cipher.decrypt(self.key, self.iv, message[wire.HEADER_LEN:end])
        return wire.with_header_fields(message[:wire.HEADER_LEN],
                                       flags=header.flags & ~C.FLAG_ENCRYPTION) + plaintext

    def encrypt(self, pkt):
        """A NEW packet: `pkt` encrypted with this KEK (body stays Raw until decrypted)."""
        return dissect(self.encrypt_bytes(pkt))

    def decrypt(self, pkt):
        """A NEW, fully dissected plaintext packet."""
        return dissect(self.decrypt_bytes(pkt))

    # -- signature -----------------------------------------------------------------

    def sign_bytes(self, message):
        """Fill the SIG payload of a plaintext PUSH (bytes) and return the bytes.

        The SIG payload is resized to the signature length first, so the header length
        written and signed is final: padded (default, the safe choice of facts §4.3) or
        unpadded (``sign_unpadded_length``, gdoid's sender). The result ends with the
        zero padding that encryption would add, and its Length counts it.
        """
        if self.private_key is None:
            raise crypto.GDOICryptoError("no private key to sign with")
        message = _as_bytes(message)
        header = wire.Header(message)
        body = message[wire.HEADER_LEN:_declared_end(header, message)]
        sig_offset = _sig_offset(header, body)
        sig_len = crypto.signature_length(self.private_key)
        sig_payload_len = wire.GENERIC_PAYLOAD_HEADER_LEN + sig_len
        sig_header = (body[sig_offset:sig_offset + wire.PAYLOAD_LENGTH_OFFSET]
                      + sig_payload_len.to_bytes(2, "big"))
        body = body[:sig_offset]
        unpadded = wire.HEADER_LEN + len(body) + sig_payload_len
        padded = wire.HEADER_LEN + len(self.cipher.pad(b"\0" * (unpadded - wire.HEADER_LEN)))
        signed_length = unpadded if self.sign_unpadded_length else padded
        signed_header = wire.with_header_fields(
            message[:wire.HEADER_LEN], flags=header.flags | C.FLAG_ENCRYPTION,
            length=signed_length)
        signature = crypto.sign(self.private_key, self.sig_hash,
                                C.REKEY_SIGNATURE_PREFIX + signed_header + body,
                                digest_info=self.digest_info)
        # The plaintext carries its zero padding already, so its header Length (the
        # one signed) stays true through encryption.
        out_header = wire.with_header_fields(message[:wire.HEADER_LEN], length=padded)
        return (out_header + body + sig_header + signature
                + b"\0" * (padded - unpadded))

    def verify_bytes(self, message):
        """True/False for a decrypted PUSH (bytes); GDOICryptoError when no key/SIG."""
        return self.signature_hash(message) is not None

    def signature_hash(self, message):
        """The SIG_HASH_ALGORITHM under which the SIG of a decrypted PUSH verifies, or None.

        With ``sig_hash=None`` (a KEK from a keys file, its SA KEK never seen) the
        SHA-1/SHA-2 hashes are tried in turn. Both header lengths are tried: as sent
        (padded) and unpadded (gdoid's sender, facts §4.3).
        """
        if self.public_key is None:
            raise crypto.GDOICryptoError("no public key to verify with")
        message = _as_bytes(message)
        header = wire.Header(message)
        body = message[wire.HEADER_LEN:]
        sig_offset = _sig_offset(header, body)
        length_at = sig_offset + wire.PAYLOAD_LENGTH_OFFSET
        sig_length = int.from_bytes(body[length_at:length_at + 2], "big")
        signature = body[sig_offset + wire.GENERIC_PAYLOAD_HEADER_LEN:sig_offset + sig_length]
        signed_payloads = body[:sig_offset]
        unpadded = wire.HEADER_LEN + sig_offset + sig_length
        candidates = (CANDIDATE_SIG_HASHES if self.sig_hash is None else (self.sig_hash,))
        for hash_alg in candidates:
            for length in dict.fromkeys((header.length, unpadded)):
                signed_header = wire.with_header_fields(
                    message[:wire.HEADER_LEN], flags=header.flags | C.FLAG_ENCRYPTION,
                    length=length)
                if crypto.verify(self.public_key, hash_alg,
                                 C.REKEY_SIGNATURE_PREFIX + signed_header + signed_payloads,
                                 signature):
                    return hash_alg
        return None

    def sign(self, pkt):
        """A NEW plaintext packet with its SIG payload filled in."""
        return dissect(self.sign_bytes(pkt))

    def verify(self, pkt):
        """True when the (decrypted) packet's SIG is valid, False otherwise."""
        return self.verify_bytes(pkt)

    def seal_bytes(self, pkt):
        """Sign then encrypt (the order of facts §4.4): wire bytes of a ready PUSH."""
        return self.encrypt_bytes(self.sign_bytes(pkt))

    def seal(self, pkt):
        """A NEW encrypted, signed packet ready to send."""
        return dissect(self.seal_bytes(pkt))

    def open(self, pkt):
        """Decrypt then verify: (NEW plaintext packet, "valid"/"invalid"/"unverified")."""
        plain = self.decrypt_bytes(pkt)
        return dissect(plain), self.check_signature(plain)

    def check_signature(self, plain):
        """"valid", "invalid" or "unverified" (no key) for decrypted bytes; no raise."""
        if self.public_key is None:
            return SIG_UNVERIFIED
        try:
            return SIG_VALID if self.verify_bytes(plain) else SIG_INVALID
        except (wire.WireError, crypto.GDOICryptoError):
            return SIG_INVALID


def _declared_end(header, message):
    """End offset of the message per the header Length; checks truncation."""
    if header.length < wire.HEADER_LEN:
        raise wire.WireError("header Length %d is below the %d-octet header"
                             % (header.length, wire.HEADER_LEN))
    if header.length > len(message):
        raise wire.WireError("truncated message: header Length says %d octets, got %d"
                             % (header.length, len(message)))
    return header.length


def _sig_offset(header, body):
    """Offset of the SIG payload in a plaintext body (it must be the last payload)."""
    offsets = [(ptype, offset) for ptype, offset, _ in
               wire.iter_payloads(header.next_payload, body)]
    if not offsets or offsets[-1][0] != C.PT_SIG:
        raise crypto.GDOICryptoError("no SIG payload at the end of the message")
    return offsets[-1][1]


#: Largest KEK cipher block: the padding bound when the caller does not name its cipher.
MAX_KEK_BLOCK_SIZE = max(cipher.block_size for cipher in crypto.KEK_CIPHERS.values())


def plaintext_problem(plain, block_size=MAX_KEK_BLOCK_SIZE):
    """Why decrypted bytes are not a GDOI message, or None when they are.

    The body must be a payload chain starting with the header's Next Payload and
    followed by less than one block of zero padding (facts §4.4: the sender pads to
    the cipher's block size, so `block_size` is the KEK cipher's: 8 for DES/3DES, 16
    for AES; without it the largest block is allowed). A wrong KEK (or an altered
    ciphertext) turns the first block into noise, which this catches: the result is a
    clear "cannot decrypt" rather than a bogus dissection.
    """
    try:
        header = wire.Header(plain)
        body = plain[wire.HEADER_LEN:]
        end = 0
        for _type, offset, data in wire.iter_payloads(header.next_payload, body):
            end = offset + len(data)
    except wire.WireError as exc:
        return "plaintext is not a GDOI payload chain (%s)" % exc
    if header.next_payload == C.PT_NONE:
        return "plaintext announces no payload"
    trailer = body[end:]
    if len(trailer) >= block_size or trailer.strip(b"\0"):
        return ("plaintext has %d octets of non-padding after the last payload (the "
                "padding is under one %d-octet block)" % (len(trailer), block_size))
    return None


def right_kek_evident(plain):
    """Whether broken plaintext still shows that the KEK was right (so the ciphertext
    was altered), judged from the first payload's generic header alone.

    In CBC a wrong key garbles every block, while an altered ciphertext block garbles
    only that block and flips bits in the next (facts §4.4: CBC, static IV). The first
    payload header (RFC 2408 §3.2: Next Payload, RESERVED = 0, Length) sits in the first
    block; when it is well formed (a known Next Payload, a zero RESERVED, a Length that
    fits, 8 for the SEQ a PUSH starts with, RFC 6407 §5.7) noise would match it with a
    probability below 1e-5, so the key decrypted it. Otherwise nothing tells a wrong KEK
    from an alteration of the first block: False.
    """
    from scapy_gdoi.ack import SEQ_PAYLOAD_LEN
    try:
        header = wire.Header(plain)
    except wire.WireError:
        return False
    body = plain[wire.HEADER_LEN:]
    if len(body) < wire.GENERIC_PAYLOAD_HEADER_LEN:
        return False
    next_type, reserved = body[0], body[1]
    length = int.from_bytes(body[wire.PAYLOAD_LENGTH_OFFSET:wire.PAYLOAD_LENGTH_OFFSET + 2],
                            "big")
    if header.next_payload == C.PT_SEQ and length != SEQ_PAYLOAD_LEN:
        return False
    return (reserved == 0 and (next_type == C.PT_NONE or next_type in C.GDOI_PAYLOAD_TYPES)
            and wire.GENERIC_PAYLOAD_HEADER_LEN <= length <= len(body))
