# SPDX-License-Identifier: GPL-2.0-only
"""Forge complete GROUPKEY-PUSH messages from a key-server policy.

:func:`forge_push` turns a :class:`PushPolicy` into the wire message of RFC 6407 §4
(``HDR*, SEQ, [D,] SA, KD, SIG``), signed then encrypted with the KEK (facts §4.3/§4.4):

* SA: an SA KEK (RFC 6407 §5.3) when the policy sends KEK policy (always when the KEK
  changes or ACKs are requested: KEK_ACK_REQUESTED, DECISIONS.md §2), a GAP (ATD, DTD,
  IP-D3P type/window, DECISIONS.md §3), one SA TEK per :class:`TEKPolicy`;
* KD: a key packet per TEK, plus the KEK key packet (KEK_ALGORITHM_KEY = IV ‖ key,
  SIG_ALGORITHM_KEY = DER SubjectPublicKeyInfo) with the SA KEK.

:meth:`PushPolicy.for_member` fills ACK request, ATD and D3P from the policy module
(:mod:`scapy_gdoi.policy`: seed Tables 1-2, ATD rule, D3P window).
"""
import functools
import ipaddress
import operator
import os

from scapy_gdoi import _consts as C
from scapy_gdoi import crypto, wire


def _number(table, name):
    """The number a name has in one of the _consts tables (keeps literals out)."""
    for number, entry in table.items():
        if (entry[0] if isinstance(entry, tuple) else entry) == name:
            return number
    raise KeyError(name)


#: Largest value of a basic (TV) attribute (RFC 2408 §3.3); ATD and DTD are TV-only
#: (facts §2.4).
TV_ATTRIBUTE_MAX = C.TV_ATTRIBUTE_MAX


def _address_id_type(address):
    """ID_IPV4_ADDR or ID_IPV6_ADDR for an address given as text."""
    version = ipaddress.ip_address(address).version
    return C.ID_IPV4_ADDR if version == 4 else C.ID_IPV6_ADDR


def _subnet_id_type(subnet):
    """ID_IPV4_ADDR_SUBNET or ID_IPV6_ADDR_SUBNET for a prefix given as text."""
    version = ipaddress.ip_network(subnet, strict=False).version
    return C.ID_IPV4_ADDR_SUBNET if version == 4 else C.ID_IPV6_ADDR_SUBNET


#: Key sizes (octets) of the TEK integrity keys, by AUTHENTICATION_ALGORITHM name.
_AUTH_KEY_OCTETS = {"HMAC-MD5": 16, "HMAC-SHA": 20, "HMAC-SHA2-256": 32,
                    "HMAC-SHA2-384": 48, "HMAC-SHA2-512": 64}
#: Cipher key sizes (octets) for ESP transforms with a fixed key size.
_FIXED_KEY_OCTETS = {"ESP_DES": 8, "ESP_3DES": 24, "ESP_NULL": 0}


class TEKPolicy:
    """One SA TEK (RFC 6407 §5.4.1) and its keys (§5.6.1).

    :param spi: 32-bit SPI. :param transform: ESP/AH transform name (C.ESP_TRANSFORMS).
    :param key_bits: KEY_LENGTH for variable-key ciphers (AES), None otherwise.
    :param auth: AUTHENTICATION_ALGORITHM name, or None (combined-mode/AH-only).
    :param src, dst: traffic selectors ("10.0.0.0/8", "0.0.0.0/0" ...).
    :param enc_key, auth_key: key bytes; random of the right size when None.
    """

    def __init__(self, spi, transform="ESP_AES-CBC", key_bits=128, auth="HMAC-SHA2-256",
                 lifetime_s=3600, src="0.0.0.0/0", dst="0.0.0.0/0",
                 protocol_id=C.TEK_PROTO_ESP, mode="Tunnel", enc_key=None, auth_key=None):
        _check_tek_spi(spi)
        _check_transform(protocol_id, transform)
        self.spi, self.transform, self.key_bits, self.auth = spi, transform, key_bits, auth
        self.lifetime_s, self.src, self.dst = lifetime_s, src, dst
        self.protocol_id, self.mode = protocol_id, mode
        if enc_key is None:
            size = _FIXED_KEY_OCTETS.get(transform, (key_bits or 0) // 8)
            enc_key = os.urandom(size)
        if auth_key is None and auth is not None:
            auth_key = os.urandom(_AUTH_KEY_OCTETS.get(auth, 32))
        self.enc_key, self.auth_key = enc_key, auth_key

    def sat(self):
        """The SA TEK payload (RFC 6407 encoding)."""
        from scapy_gdoi.gdoi import GDOI_IPsec_Attr, GDOI_SAT_IPsec
        transforms = (C.ESP_TRANSFORMS if self.protocol_id == C.TEK_PROTO_ESP
                      else C.AH_TRANSFORMS)
        attrs = [GDOI_IPsec_Attr(type="SA_LIFE_TYPE", value="seconds"),
                 GDOI_IPsec_Attr(type="SA_LIFE_DURATION", value=self.lifetime_s),
                 GDOI_IPsec_Attr(type="ENCAPSULATION_MODE", value=self.mode)]
        if self.auth is not None:
            attrs.append(GDOI_IPsec_Attr(type="AUTHENTICATION_ALGORITHM", value=self.auth))
        if self.key_bits and self.transform not in _FIXED_KEY_OCTETS:
            attrs.append(GDOI_IPsec_Attr(type="KEY_LENGTH", value=self.key_bits))
        return GDOI_SAT_IPsec(protocol_id=self.protocol_id,
                              src_id_type=_subnet_id_type(self.src), src_id=self.src,
                              dst_id_type=_subnet_id_type(self.dst), dst_id=self.dst,
                              transform_id=_number(transforms, self.transform),
                              spi=self.spi, attrs=attrs)

    def key_packet(self):
        """The TEK key packet of the KD."""
        from scapy_gdoi.gdoi import GDOI_KD_TEK_Attr, GDOI_KeyPacket
        attrs = [GDOI_KD_TEK_Attr(type="TEK_ALGORITHM_KEY", data=self.enc_key)]
        if self.auth_key is not None:
            attrs.append(GDOI_KD_TEK_Attr(type="TEK_INTEGRITY_KEY", data=self.auth_key))
        return GDOI_KeyPacket(kd_type=C.KD_TEK,
                              spi=self.spi.to_bytes(C.KD_SPI_SIZES[C.KD_TEK], "big"),
                              attrs=attrs)


#: Largest TEK SPI: IPsec SPIs are 32 bits (RFC 4303 §2.1), so the KD carries 4 octets.
TEK_SPI_MAX = (1 << (8 * C.KD_SPI_SIZES[C.KD_TEK])) - 1


def _check_tek_spi(spi):
    if isinstance(spi, bool) or not isinstance(spi, int):
        raise TypeError("TEK SPI must be an int, got %s" % type(spi).__name__)
    if not 0 <= spi <= TEK_SPI_MAX:
        raise ValueError("TEK SPI %d out of range: an IPsec SPI is 32 bits (0..%d)"
                         % (spi, TEK_SPI_MAX))


def _check_transform(protocol_id, transform):
    """Refuse a transform name the SA TEK could not encode, listing the valid ones."""
    transforms = C.ESP_TRANSFORMS if protocol_id == C.TEK_PROTO_ESP else C.AH_TRANSFORMS
    names = [entry[0] if isinstance(entry, tuple) else entry for entry in transforms.values()]
    if transform not in names:
        raise ValueError("unknown %s transform %r; valid names: %s" % (
            "ESP" if protocol_id == C.TEK_PROTO_ESP else "AH", transform, ", ".join(names)))


class GAPPolicy:
    """Group Associated Policy values (RFC 6407 §5.2, DECISIONS.md §3); None = absent."""

    def __init__(self, atd=None, dtd=None, d3p_type=None, d3p_window_ms=None):
        self.atd, self.dtd = atd, dtd
        self.d3p_type, self.d3p_window_ms = d3p_type, d3p_window_ms

    def gap(self):
        from scapy_gdoi.gdoi import GDOI_GAP, GDOI_GAP_Attr
        attrs = []
        # ATD and DTD are TV-only (facts §2.4): a TV value cannot say more than 65535 s,
        # so larger delays are clamped. Clamping only lets members start (ATD) or stop
        # (DTD) using the new/old SA earlier than asked, which is safe once they have
        # the new SA; a 3-octet TLV would be refused by receivers.
        atd = None if self.atd is None else min(self.atd, TV_ATTRIBUTE_MAX)
        dtd = None if self.dtd is None else min(self.dtd, TV_ATTRIBUTE_MAX)
        for name, value in (("ACTIVATION_TIME_DELAY", atd),
                            ("DEACTIVATION_TIME_DELAY", dtd),
                            ("D3P_TYPE", self.d3p_type),
                            ("D3P_WINDOW_SIZE", self.d3p_window_ms)):
            if value is not None:
                attrs.append(GDOI_GAP_Attr(type=name, value=value))
        return GDOI_GAP(attrs=attrs) if attrs else None


class PushPolicy:
    """Everything one GROUPKEY-PUSH says.

    :param kek: the :class:`~scapy_gdoi.rekey.KEKContext` protecting the message; it
        must hold the private key that signs it.
    :param seq: SEQ (previous + 1, RFC 6407 §3.2).
    :param teks: [:class:`TEKPolicy`]; :param gap: :class:`GAPPolicy` or None.
    :param new_kek: a KEKContext to hand out (KEK rekey); its SA KEK + key packet are sent.
    :param send_kek_policy: send the SA KEK (+ KEK key packet) of the current KEK even
        without a new one (needed to carry KEK_ACK_REQUESTED).
    :param ack_requested: KEK_ACK_REQUESTED (RFC 8263, DECISIONS.md §2): a name any API
        accepts ("REKEY_ACK_KEK_SHA256", "sha256"...), a raw int sent as is, or None.
    :param deletes: [(protocol_id, [spi bytes, ...])] DELETE payloads.
    :param server, group: SA KEK source / destination addresses (port 848).
    """

    def __init__(self, kek, seq, teks=(), gap=None, new_kek=None, send_kek_policy=None,
                 ack_requested=None, kek_lifetime_s=86400, deletes=(),
                 server="0.0.0.0", group="0.0.0.0"):
        self.kek, self.seq, self.teks, self.gap = kek, seq, list(teks), gap
        self.new_kek = new_kek
        if send_kek_policy is None:
            send_kek_policy = new_kek is not None or ack_requested is not None
        self.send_kek_policy = send_kek_policy
        # Names are normalised like everywhere else (crypto.ack_method_value); a raw
        # int is sent as given, so a test can forge a value no member knows.
        if isinstance(ack_requested, str):
            ack_requested = crypto.ack_method_value(ack_requested)
        self.ack_requested = ack_requested
        self.kek_lifetime_s = kek_lifetime_s
        self.deletes = list(deletes)
        self.server, self.group = server, group

    @classmethod
    def for_member(cls, kek, seq, table, member_id, old_sa_remaining_s=None,
                   group_config=None, **kwargs):
        """A policy for a rekey to one member, from the key-server policy module.

        KEK_ACK_REQUESTED from the member table (seed Table 1), ATD from the ATD rule
        when `old_sa_remaining_s` is given, D3P type/window from `group_config`
        (:class:`scapy_gdoi.policy.GroupConfig`, ``sa d3p window``).
        """
        ack = table.kek_ack_requested(member_id)
        atd = (table.activation_time_delay(member_id, old_sa_remaining_s)
               if old_sa_remaining_s is not None else None)
        d3p_type = d3p_window = None
        if group_config is not None and group_config.d3p_window_ms is not None:
            d3p_type, d3p_window = group_config.d3p_type, group_config.d3p_window_ms
        gap = kwargs.pop("gap", None) or GAPPolicy()
        gap.atd = atd if atd is not None else gap.atd
        gap.d3p_type = d3p_type if d3p_type is not None else gap.d3p_type
        gap.d3p_window_ms = d3p_window if d3p_window is not None else gap.d3p_window_ms
        return cls(kek, seq, gap=gap, ack_requested=ack, **kwargs)


def _sak(policy, described):
    from scapy_gdoi.gdoi import GDOI_KEK_Attr, GDOI_SAK
    signer = policy.kek.private_key
    attrs = [GDOI_KEK_Attr(type="KEK_ALGORITHM", value=described.cipher.alg_id),
             GDOI_KEK_Attr(type="KEK_KEY_LENGTH", value=len(described.key) * 8),
             GDOI_KEK_Attr(type="KEK_KEY_LIFETIME", value=policy.kek_lifetime_s),
             GDOI_KEK_Attr(type="SIG_HASH_ALGORITHM",
                           value=_sig_hash_number(policy.kek.sig_hash)),
             GDOI_KEK_Attr(type="SIG_ALGORITHM", value=crypto.signature_algorithm_of(signer)),
             GDOI_KEK_Attr(type="SIG_KEY_LENGTH", value=signer.key_size)]
    if policy.ack_requested is not None:
        attrs.append(GDOI_KEK_Attr(type="KEK_ACK_REQUESTED", value=policy.ack_requested))
    return GDOI_SAK(src_id_type=_address_id_type(policy.server), src_id_port=C.GDOI_UDP_PORT,
                    src_id=policy.server, dst_id_type=_address_id_type(policy.group),
                    dst_id_port=C.GDOI_UDP_PORT, dst_id=policy.group,
                    spi=described.spi, attrs=attrs)


def _sig_hash_number(sig_hash):
    if isinstance(sig_hash, int):
        return sig_hash
    name = crypto.sig_hash_name(sig_hash)
    return next(n for n, v in crypto.SIG_HASH_NAMES.items() if v == name)


def _kek_key_packet(policy, described):
    from scapy_gdoi.gdoi import GDOI_KD_KEK_Attr, GDOI_KeyPacket
    public_der = crypto.public_key_der(policy.kek.private_key.public_key())
    return GDOI_KeyPacket(kd_type=C.KD_KEK, spi=described.spi, attrs=[
        GDOI_KD_KEK_Attr(type="KEK_ALGORITHM_KEY", data=described.algorithm_key),
        GDOI_KD_KEK_Attr(type="SIG_ALGORITHM_KEY", data=public_der)])


def build_push(policy):
    """The plaintext GROUPKEY-PUSH of `policy` (SIG payload still empty)."""
    from scapy_gdoi.gdoi import (GDOI, GDOI_DELETE, GDOI_KD, GDOI_SA, GDOI_SEQ,
                                 GDOI_SIG)
    if policy.kek.private_key is None:
        raise crypto.GDOICryptoError("the KEK context has no private key to sign with")
    spi = policy.kek.spi
    message = (GDOI(init_cookie=spi[:wire.COOKIE_LEN], resp_cookie=spi[wire.COOKIE_LEN:],
                    exch_type=C.EXCH_GROUPKEY_PUSH, flags=0, id=0)
               / GDOI_SEQ(seq=policy.seq))
    for protocol_id, spis in policy.deletes:
        message = message / GDOI_DELETE(protocol_id=protocol_id, spis=list(spis))
    described = policy.new_kek or policy.kek
    sa_members, key_packets = [], []
    if policy.send_kek_policy:
        sa_members.append(_sak(policy, described))
        key_packets.append(_kek_key_packet(policy, described))
    gap = policy.gap.gap() if policy.gap is not None else None
    if gap is not None:
        sa_members.append(gap)
    for tek in policy.teks:
        sa_members.append(tek.sat())
        key_packets.append(tek.key_packet())
    if not sa_members:
        raise ValueError("a GROUPKEY-PUSH needs at least an SA KEK, a GAP or an SA TEK")
    message = message / GDOI_SA(payloads=functools.reduce(operator.truediv, sa_members))
    message = message / GDOI_KD(key_packets=key_packets) / GDOI_SIG(sig=b"")
    return message


def forge_push(policy):
    """A complete GROUPKEY-PUSH: built from `policy`, signed, encrypted (a NEW packet).

    ``bytes(forge_push(policy))`` is what goes on UDP 848.
    """
    return policy.kek.seal(build_push(policy))
