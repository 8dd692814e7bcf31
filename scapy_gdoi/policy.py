# SPDX-License-Identifier: GPL-2.0-only
"""Key-server rules of GET VPN interoperability: pure logic, no packets, no I/O.

Source: the Cisco "GET VPN Interoperability" feature guide (the project's seed
document), RFC 8263 (GROUPKEY-PUSH ACK), RFC 6407 §4.2.1 (Activation Time Delay),
draft-weis-delay-detection (IP-D3P). Protocol numbers come from :mod:`scapy_gdoi._consts`.

What lives here
===============
* :func:`activation_time_delay` and :func:`member_gets_atd` / :func:`atd_for_rekey`:
  the ATD value a key server puts in the GAP, and who gets it.
* :data:`KEK_ACK_REQUESTED_TABLE` (seed Table 1) and :data:`ACK_ACCEPTANCE_TABLE`
  (seed Table 2), written as tables (h11 style) with :func:`kek_ack_requested` and
  :func:`ack_accepted` as the only readers.
* :class:`MemberTable`: the key server's member bookkeeping (ACK recording,
  three-strikes removal). The HASH of an ACK is verified elsewhere (crypto module) and
  passed in as a bool.
* :func:`parse_config`: IOS-style configuration text to one :class:`GroupConfig` per
  group, with the seed's ranges and restrictions enforced (:class:`ConfigError`).
* :func:`effective_d3p_window_ms`: the window a member enforces.
* :class:`CoopAnnouncement` and :func:`coop_config_mismatches`: the
  ``%GDOI-3-COOP_CONFIG_MISMATCH`` warnings of a secondary key server.
* ``render_*``: IOS-style ``show`` text.

Example::

    >>> cfg, = parse_config("crypto gkm group GETVPN\\n server local\\n"
    ...                     "  rekey transport unicast\\n  rekey acknowledgement any\\n")
    >>> table = MemberTable.from_config(cfg)
    >>> table.register("10.0.3.1", "non-cisco")
    >>> table.kek_ack_requested("10.0.3.1")  # seed Table 1: REKEY_ACK_KEK_SHA256
    1
    >>> table.rekey_sent(7)
    ['10.0.3.1']
    >>> table.ack_received("10.0.3.1", 7, "rfc8263", hash_valid=True).status
    <AckStatus.RECORDED: 'recorded'>
    >>> table.ack_received("10.0.3.1", 6, "rfc8263", hash_valid=True).detail
    'SEQ 6 is older than the last SEQ sent to this member (7)'

Vocabulary (plain strings, so callers and the CLI can pass them straight through)
--------------------------------------------------------------------------------
* ACK options (``rekey acknowledgement ...``): ``"cisco"`` (default), ``"interoperable"``, ``"any"``.
* Member kinds (seed Table 1 columns): ``"cisco"`` (new Cisco group member),
  ``"asr9000"`` (Cisco ASR 9000), ``"non-cisco"``.
* ACK kinds a member sends: ``"rfc8263"`` (GROUPKEY-PUSH ACK, the seed's "I-D ACK") and
  ``"cisco"`` (Cisco-proprietary encrypted unicast rekey ACK).
* Rekey transports: ``"unicast"``, ``"multicast"``.

Accepted configuration grammar
==============================
Lines are read one by one; line numbers count every physical line from 1. Leading
whitespace (running-config indentation) does not matter: as on IOS, a command that
is not valid in the current mode is tried in the enclosing modes, and matching there
leaves the sub-mode. Keywords are case-insensitive; names keep their case. Blank lines
and lines starting with ``!`` are skipped. A CLI prompt in front of a line
(``Device(gdoi-local-server)# ...``, ``Device> ...``) is stripped; the mode always
comes from the commands, never from the prompt text.

Session commands, anywhere: ``enable``, ``configure terminal`` (``conf t``), ``end``
(back to global mode), ``exit`` (up one mode; in global mode it ends the session and
changes nothing).

Global mode::

    crypto gkm group NAME            enter (or re-enter) group NAME; "crypto gdoi group" also accepted
    no crypto gkm group NAME         forget group NAME

Group mode (``config-gkm-group``)::

    server local                     this device is the group's key server; enter key-server mode
    server address {ipv4|ipv6} ADDR  this device is a group member (line kept in other_lines)
    client d3p window sec N          member override of the D3P window, N in 1..100
    client d3p window msec N         ... N in 100..10000
    no client d3p window [sec N | msec N]
    identity ...                     accepted, kept verbatim in other_lines

Key-server mode (``gdoi-local-server``)::

    sa d3p window sec N | msec N     enable IP-D3P with that window (same ranges)
    no sa d3p window [sec N | msec N]
    rekey acknowledgement {cisco | interoperable | any}   ("acknowledgment" also accepted)
    no rekey acknowledgement [OPTION]  back to the default, cisco
    rekey transport unicast          (default: multicast, as on IOS)
    no rekey transport unicast
    rekey activation-time-delay      invented: turn on GAP Activation Time Delay
    cisco-metadata                   invented: Cisco metadata (CMD) on the group's traffic
    gm error-detection               invented: GETVPN Resiliency - GM Error Detection
    sa ipsec N                       IPsec SA number N (1..65535); enter SA mode
    no sa ipsec N
    no <any of the invented feature lines>
    rekey {address|lifetime|retransmit|authentication|algorithm} ..., address ...,
    redundancy ...                   accepted, kept verbatim in other_lines

IPsec SA mode (``gdoi-sa-ipsec``)::

    tag cts sgt                      invented: IPsec inline tagging for Cisco TrustSec
    no tag cts sgt
    profile ..., match ..., replay ... accepted, kept verbatim in other_lines

Lines kept verbatim, ``server address`` and ``server local`` have no ``no`` form here.

Restrictions (seed, "Restrictions for GET VPN Interoperability"), checked when the
second feature of a conflicting pair is turned on, so the error names that line and
the line of the first one:

* IP-D3P cannot coexist with Cisco metadata, GM error detection or inline tagging.
* Activation Time Delay supports a single IPsec SA.
* A group is either a key server (``server local``) or a member (``server address``,
  ``client d3p window``), not both.

Anything else is a :class:`ConfigError` carrying the line number and the line.

Decisions where the seed is silent (each one is a single place in this file)
===========================================================================
* ATD rides only in unicast rekeys (seed: "when sending unicast rekey messages"), so
  :func:`atd_for_rekey` gives ``None`` for multicast rekeys; a multicast rekey reaches
  Cisco members too, which must not get ATD.
* The ATD value is not clamped to 16 bits here: the seed's formula is applied as is
  (a remaining lifetime above 65565 s gives an ATD that a TV attribute cannot carry);
  the forger (:mod:`scapy_gdoi.forge`) clamps ATD/DTD to 65535 s when encoding.
* With multicast rekey transport no ACK is expected (seed note), so the KEK SA carries
  no KEK_ACK_REQUESTED (seed ``show crypto gkm ks policy``: ``acknowledgement : none``)
  and the ACK type in use is "None", whatever the configured option.
* A rekey's ACK window closes when the key server sends the next rekey (an ACK for the
  older SEQ would be stale from then on) or when the caller calls
  :meth:`MemberTable.close_ack_window` (e.g. after the retransmissions). A unicast
  rekey whose window closed without an ACK is one strike; the third consecutive strike
  removes the member at that moment. Multicast rekeys neither count nor reset.
* A late ACK whose SEQ is still the last one sent to the member is recorded (the
  seed's only condition is "same as the last sent sequence number") and resets the count.
* A duplicate ACK (same SEQ, already recorded) is ignored: reported as ``DUPLICATE``,
  not an error, nothing counted twice (as the RFC 8263 review asked for its §5).
* An ACK from a member removed from the database is reported as ``REMOVED_MEMBER``
  (more precise than "unknown"). Registering again makes it a fresh member.
* ACK acceptance follows Table 2 only (per option, not per member kind).
* D3P is on in a group when the key server announces it; a member's
  ``client d3p window`` only replaces the window (an ASR 9000 cannot override: seed note).
* On the wire a primary's announcement can only say whether KEK_ACK_REQUESTED is
  present (and its value), which is the same for ``interoperable`` and ``any``; the
  coop comparison therefore flags a mismatch only when the attribute differs. With
  multicast rekeys the attribute is absent whatever the ACK option (no ACK expected),
  so an ACK-option difference between multicast key servers is not flagged.
"""
import dataclasses
import enum
import re
from typing import Dict, FrozenSet, List, Optional, Tuple

from ._consts import (
    ATD_GUARD_SECONDS,
    ATD_MINIMUM_SECONDS,
    D3P_TIMESTAMP_TYPES,
    D3P_TS_POSIX_TIME_MSEC,
    D3P_WINDOW_MSEC_RANGE,
    D3P_WINDOW_SEC_RANGE,
    KEK_ACK_SHA256,
    UNACKED_REKEY_LIMIT,
)

__all__ = [
    "ACK_ANY", "ACK_CISCO", "ACK_INTEROPERABLE", "ACK_OPTIONS",
    "MEMBER_ASR9000", "MEMBER_CISCO", "MEMBER_NON_CISCO", "MEMBER_KINDS",
    "ACK_KIND_CISCO", "ACK_KIND_RFC8263", "ACK_KINDS",
    "TRANSPORT_MULTICAST", "TRANSPORT_UNICAST", "TRANSPORTS",
    "ROLE_KEY_SERVER", "ROLE_MEMBER",
    "FEATURE_ACTIVATION_TIME_DELAY", "FEATURE_CISCO_METADATA",
    "FEATURE_GM_ERROR_DETECTION", "FEATURE_INLINE_TAGGING",
    "KEK_ACK_REQUESTED_TABLE", "ACK_ACCEPTANCE_TABLE",
    "COOP_D3P_MISMATCH", "COOP_ACK_MISMATCH",
    "activation_time_delay", "member_gets_atd", "atd_for_rekey",
    "kek_ack_requested", "ack_accepted",
    "AckStatus", "AckResult", "Removal", "MemberStatus", "MemberTable",
    "ConfigError", "GroupConfig", "parse_config", "d3p_window_to_ms",
    "effective_d3p_window_ms",
    "CoopAnnouncement", "coop_config_mismatches",
    "render_ks_replay", "render_gkm_ack_line", "render_ks_ack_line",
    "render_ks_rekey_ack", "render_kek_policy_ack",
]

# -- Vocabulary ------------------------------------------------------------------------

ACK_CISCO = "cisco"
ACK_INTEROPERABLE = "interoperable"
ACK_ANY = "any"
ACK_OPTIONS = (ACK_CISCO, ACK_INTEROPERABLE, ACK_ANY)

MEMBER_CISCO = "cisco"  # seed Table 1 "New Cisco Group Member"
MEMBER_ASR9000 = "asr9000"  # "Cisco ASR 9000 Group Member"
MEMBER_NON_CISCO = "non-cisco"  # "Non-Cisco Group Member"
MEMBER_KINDS = (MEMBER_CISCO, MEMBER_ASR9000, MEMBER_NON_CISCO)

ACK_KIND_RFC8263 = "rfc8263"  # GROUPKEY-PUSH ACK, the seed's "I-D ACK" (unencrypted)
ACK_KIND_CISCO = "cisco"  # Cisco unicast rekey ACK (KEK-encrypted)
ACK_KINDS = (ACK_KIND_RFC8263, ACK_KIND_CISCO)

TRANSPORT_UNICAST = "unicast"
TRANSPORT_MULTICAST = "multicast"
TRANSPORTS = (TRANSPORT_UNICAST, TRANSPORT_MULTICAST)

ROLE_KEY_SERVER = "key-server"
ROLE_MEMBER = "member"

FEATURE_CISCO_METADATA = "cisco-metadata"
FEATURE_GM_ERROR_DETECTION = "gm-error-detection"
FEATURE_INLINE_TAGGING = "inline-tagging"
FEATURE_ACTIVATION_TIME_DELAY = "activation-time-delay"

#: Features the seed says cannot coexist with IP-D3P, with the words used in errors.
_D3P_INCOMPATIBLE = {
    FEATURE_CISCO_METADATA: "Cisco metadata",
    FEATURE_GM_ERROR_DETECTION: "GM error detection",
    FEATURE_INLINE_TAGGING: "IPsec inline tagging",
}


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError("unknown %s %r; expected one of %s"
                         % (what, value, ", ".join(repr(c) for c in choices)))
    return value


def _check_non_negative_int(value, what):
    # bool is an int subclass; True as a lifetime or SEQ is always a caller bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__))
    if value < 0:
        raise ValueError("%s must not be negative (got %d)" % (what, value))
    return value


# -- Activation Time Delay (seed "Activation Time Delay", RFC 6407 §4.2.1) ---------------

def activation_time_delay(old_sa_remaining_s):
    """ATD in seconds for the GAP of a rekey, from the old SA's remaining lifetime.

    The seed fixes it at 30 s before the old SA expires, never below 1 s:
    ``ATD = max(max(remaining, 30) - 30, 1)``.

    :param old_sa_remaining_s: remaining lifetime of the SA being replaced, whole
        seconds, >= 0.
    :raises TypeError: not an int. :raises ValueError: negative.
    """
    _check_non_negative_int(old_sa_remaining_s, "old SA remaining lifetime")
    return max(max(old_sa_remaining_s, ATD_GUARD_SECONDS) - ATD_GUARD_SECONDS,
               ATD_MINIMUM_SECONDS)


#: Seed note under "Activation Time Delay": only ASR 9000 and non-Cisco members
#: support ATD, so only they are sent it.
_ATD_BY_MEMBER_KIND = {
    MEMBER_CISCO: False,
    MEMBER_ASR9000: True,
    MEMBER_NON_CISCO: True,
}


def member_gets_atd(member_kind):
    """True when the key server sends ATD to a member of this kind."""
    return _ATD_BY_MEMBER_KIND[_check_choice(member_kind, MEMBER_KINDS, "member kind")]


def atd_for_rekey(member_kind, old_sa_remaining_s, transport=TRANSPORT_UNICAST):
    """The ATD value to put in the GAP of a rekey to this member, or None for none.

    ATD goes only in unicast rekeys (seed: "when sending unicast rekey messages") and
    only to the member kinds of :func:`member_gets_atd`.
    """
    _check_choice(transport, TRANSPORTS, "rekey transport")
    value = activation_time_delay(old_sa_remaining_s)
    if transport != TRANSPORT_UNICAST or not member_gets_atd(member_kind):
        return None
    return value


# -- Seed Tables 1 and 2 ----------------------------------------------------------------

#: Seed Table 1, "KEK SA Payload for Each Acknowledgment Option": the value of the
#: KEK_ACK_REQUESTED attribute the SA KEK carries, per ACK option then member kind;
#: None means "No Attribute". KEK_ACK_SHA256 is IOS's REKEY_ACK_KEK_SHA256.
KEK_ACK_REQUESTED_TABLE = {
    ACK_CISCO: {
        MEMBER_CISCO: None,
        MEMBER_ASR9000: None,
        MEMBER_NON_CISCO: None,
    },
    ACK_INTEROPERABLE: {
        MEMBER_CISCO: KEK_ACK_SHA256,
        MEMBER_ASR9000: KEK_ACK_SHA256,
        MEMBER_NON_CISCO: KEK_ACK_SHA256,
    },
    ACK_ANY: {
        MEMBER_CISCO: None,
        MEMBER_ASR9000: KEK_ACK_SHA256,
        MEMBER_NON_CISCO: KEK_ACK_SHA256,
    },
}

#: Seed Table 2, "Acknowledgment Methodology": whether the key server accepts an ACK
#: of each kind, per ACK option. False means the ACK "results in error".
ACK_ACCEPTANCE_TABLE = {
    ACK_CISCO: {ACK_KIND_RFC8263: False, ACK_KIND_CISCO: True},
    ACK_INTEROPERABLE: {ACK_KIND_RFC8263: True, ACK_KIND_CISCO: False},
    ACK_ANY: {ACK_KIND_RFC8263: True, ACK_KIND_CISCO: True},
}


def kek_ack_requested(ack_option, member_kind):
    """KEK_ACK_REQUESTED value for the SA KEK sent to this member kind, or None.

    Seed Table 1; :data:`scapy_gdoi._consts.KEK_ACK_METHODS` names the value.
    """
    _check_choice(ack_option, ACK_OPTIONS, "ACK option")
    _check_choice(member_kind, MEMBER_KINDS, "member kind")
    return KEK_ACK_REQUESTED_TABLE[ack_option][member_kind]


def ack_accepted(ack_option, ack_kind):
    """True when a key server with this ACK option accepts an ACK of this kind (Table 2)."""
    _check_choice(ack_option, ACK_OPTIONS, "ACK option")
    _check_choice(ack_kind, ACK_KINDS, "ACK kind")
    return ACK_ACCEPTANCE_TABLE[ack_option][ack_kind]


# -- Member bookkeeping (seed "Rekey Acknowledgment", RFC 8263) --------------------------

class AckStatus(enum.Enum):
    """What :meth:`MemberTable.ack_received` did with an ACK."""

    RECORDED = "recorded"
    #: Same SEQ already recorded for this member: ignored, not an error.
    DUPLICATE = "duplicate"
    UNKNOWN_MEMBER = "unknown member"
    REMOVED_MEMBER = "member removed from the database"
    #: Table 2 says this option does not accept this ACK kind.
    WRONG_ACK_KIND = "wrong ACK kind for the acknowledgement option"
    BAD_HASH = "HASH does not verify"
    #: SEQ older than the last sequence number sent to the member.
    STALE_SEQ = "stale SEQ"
    #: SEQ never sent to the member, newer than the last one, or a multicast rekey's.
    UNEXPECTED_SEQ = "unexpected SEQ"


@dataclasses.dataclass(frozen=True)
class AckResult:
    """Outcome of one ACK: ``status`` plus a sentence saying exactly why."""

    member_id: object
    seq: int
    status: AckStatus
    detail: str

    @property
    def recorded(self):
        return self.status is AckStatus.RECORDED

    @property
    def is_error(self):
        """True for every refusal; a duplicate is ignored, not an error."""
        return self.status not in (AckStatus.RECORDED, AckStatus.DUPLICATE)


@dataclasses.dataclass(frozen=True)
class Removal:
    """A member removed from the key server's database, and why."""

    member_id: object
    kind: str
    unacked_seqs: Tuple[int, ...]
    reason: str


@dataclasses.dataclass(frozen=True)
class MemberStatus:
    """Read-only snapshot of one member's bookkeeping."""

    member_id: object
    kind: str
    active: bool
    last_seq_sent: Optional[int]
    last_transport: Optional[str]
    last_acked_seq: Optional[int]
    #: SEQs of the consecutive unicast rekeys whose ACK window closed without an ACK.
    unacked_seqs: Tuple[int, ...]
    #: SEQ of the unicast rekey whose ACK window is still open, if any.
    awaiting_ack_seq: Optional[int]


@dataclasses.dataclass
class _Member:
    kind: str
    active: bool = True
    last_seq_sent: Optional[int] = None
    last_transport: Optional[str] = None
    last_acked_seq: Optional[int] = None
    unacked_seqs: List[int] = dataclasses.field(default_factory=list)
    awaiting_ack_seq: Optional[int] = None


class MemberTable:
    """A key server's group-member database for rekey acknowledgements.

    Rules (seed "Rekey Acknowledgment", "Key Server and Group Member Communication"):

    * An ACK is recorded only when the member is known and active, its kind is
      accepted by the ACK option (Table 2), its HASH verifies, and its SEQ equals the
      last sequence number sent to that member in a unicast rekey.
    * A member that leaves :data:`~scapy_gdoi._consts.UNACKED_REKEY_LIMIT` (3)
      consecutive unicast rekeys unacknowledged is removed, and no further rekeys are
      sent to it. Multicast rekeys expect no ACK and never count.

    See the module docstring for when an ACK window closes. The HASH check itself is
    the crypto module's job; its verdict comes in as ``hash_valid``.
    """

    def __init__(self, ack_option=ACK_CISCO, rekey_transport=TRANSPORT_UNICAST,
                 activation_time_delay_enabled=True):
        """:param ack_option: ``rekey acknowledgement`` option.
        :param rekey_transport: transport used when :meth:`rekey_sent` is not told one.
        :param activation_time_delay_enabled: whether GAPs carry ATD at all.
        """
        self.ack_option = _check_choice(ack_option, ACK_OPTIONS, "ACK option")
        self.rekey_transport = _check_choice(rekey_transport, TRANSPORTS, "rekey transport")
        self.activation_time_delay_enabled = bool(activation_time_delay_enabled)
        self._members: Dict[object, _Member] = {}  # registration order
        self._removed: List[Removal] = []
        self._last_seq: Optional[int] = None  # SEQ of the last rekey, any transport

    @classmethod
    def from_config(cls, config):
        """A table for a parsed key-server group (:class:`GroupConfig`)."""
        if config.role != ROLE_KEY_SERVER:
            raise ValueError("group %r is not a key-server group (no 'server local')"
                             % config.name)
        return cls(config.ack_option, config.rekey_transport,
                   FEATURE_ACTIVATION_TIME_DELAY in config.features)

    # -- membership

    def register(self, member_id, kind):
        """Add a member (GROUPKEY-PULL done). Registering again starts it afresh,
        which is how a removed member comes back."""
        _check_choice(kind, MEMBER_KINDS, "member kind")
        self._members[member_id] = _Member(kind=kind)

    @property
    def active_members(self):
        """Ids of the members in the database, in registration order."""
        return [mid for mid, m in self._members.items() if m.active]

    @property
    def removed(self):
        """Every removal so far, oldest first."""
        return list(self._removed)

    def member(self, member_id):
        """:class:`MemberStatus` of a registered member. :raises KeyError: unknown."""
        m = self._members[member_id]
        return MemberStatus(member_id, m.kind, m.active, m.last_seq_sent, m.last_transport,
                            m.last_acked_seq, tuple(m.unacked_seqs), m.awaiting_ack_seq)

    # -- what the key server sends

    def kek_ack_requested(self, member_id):
        """KEK_ACK_REQUESTED for the SA KEK sent to this member, or None.

        Table 1, except that multicast transport expects no ACK and so requests none.
        """
        m = self._members[member_id]
        if self.rekey_transport != TRANSPORT_UNICAST:
            return None
        return kek_ack_requested(self.ack_option, m.kind)

    def activation_time_delay(self, member_id, old_sa_remaining_s, transport=None):
        """ATD for the GAP of a rekey to this member, or None (see :func:`atd_for_rekey`)."""
        m = self._members[member_id]
        transport = self.rekey_transport if transport is None else transport
        value = atd_for_rekey(m.kind, old_sa_remaining_s, transport)
        return value if self.activation_time_delay_enabled else None

    def rekey_sent(self, seq, transport=None):
        """Record a GROUPKEY-PUSH with sequence number ``seq``; return the member ids it
        went to (the active members).

        Sending a rekey first closes the previous rekey's ACK window (see
        :meth:`close_ack_window`), which may remove members; removed members are not
        sent to. :raises ValueError: ``seq`` not above the last one sent (each PUSH
        carries a larger SEQ: RFC 6407 SEQ payload; members reject the others), or an
        unknown transport.
        """
        _check_non_negative_int(seq, "SEQ")
        transport = self.rekey_transport if transport is None else transport
        _check_choice(transport, TRANSPORTS, "rekey transport")
        if self._last_seq is not None and seq <= self._last_seq:
            raise ValueError("SEQ %d is not above the last rekey's SEQ %d"
                             % (seq, self._last_seq))
        self.close_ack_window()
        self._last_seq = seq
        sent_to = []
        for mid, m in self._members.items():
            if not m.active:
                continue
            m.last_seq_sent = seq
            m.last_transport = transport
            m.awaiting_ack_seq = seq if transport == TRANSPORT_UNICAST else None
            sent_to.append(mid)
        return sent_to

    def close_ack_window(self):
        """Stop waiting for ACKs of the last unicast rekey; return the new removals.

        Each member still owing that ACK takes a strike; a member reaching the limit of
        consecutive strikes is removed now.
        """
        new_removals = []
        for mid, m in self._members.items():
            if not m.active or m.awaiting_ack_seq is None:
                continue
            m.unacked_seqs.append(m.awaiting_ack_seq)
            m.awaiting_ack_seq = None
            if len(m.unacked_seqs) >= UNACKED_REKEY_LIMIT:
                m.active = False
                removal = Removal(
                    mid, m.kind, tuple(m.unacked_seqs),
                    "%d consecutive unicast rekeys unacknowledged (SEQ %s)"
                    % (len(m.unacked_seqs), ", ".join(str(s) for s in m.unacked_seqs)))
                new_removals.append(removal)
        self._removed.extend(new_removals)
        return new_removals

    # -- what the key server receives

    def ack_received(self, member_id, seq, kind, hash_valid):
        """Process one ACK and say whether it was recorded, or exactly why not.

        Checks, in order: member known and active, ACK kind accepted (Table 2), HASH
        (RFC 8263: validation comes before the SEQ is looked at), SEQ.

        :param kind: ``"rfc8263"`` or ``"cisco"``.
        :param hash_valid: the crypto module's verdict on the ACK's HASH (for a Cisco ACK,
            which has none, on its structure after KEK decryption: DECISIONS.md §2).
        :raises ValueError / TypeError: for arguments of the wrong shape, which are caller
            bugs, not member misbehaviour.
        """
        _check_choice(kind, ACK_KINDS, "ACK kind")
        _check_non_negative_int(seq, "SEQ")
        if not isinstance(hash_valid, bool):
            raise TypeError("hash_valid must be a bool, not %s" % type(hash_valid).__name__)

        def result(status, detail):
            return AckResult(member_id, seq, status, detail)

        m = self._members.get(member_id)
        if m is None:
            return result(AckStatus.UNKNOWN_MEMBER,
                          "member %r never registered with this key server" % (member_id,))
        if not m.active:
            return result(AckStatus.REMOVED_MEMBER,
                          "member %r was removed from the database" % (member_id,))
        if not ack_accepted(self.ack_option, kind):
            return result(AckStatus.WRONG_ACK_KIND,
                          "%s ACK is an error with 'rekey acknowledgement %s'"
                          % (_ACK_KIND_WORDS[kind], self.ack_option))
        if not hash_valid:
            if kind == ACK_KIND_CISCO:
                # No HASH in a Cisco ACK: the check is "exactly SEQ + ID under the KEK".
                return result(AckStatus.BAD_HASH, "Cisco ACK does not decrypt with the KEK "
                                                  "to exactly SEQ + ID; dropped")
            return result(AckStatus.BAD_HASH, "ACK HASH does not verify; dropped")
        if m.last_seq_sent is None:
            return result(AckStatus.UNEXPECTED_SEQ, "no rekey was sent to this member yet")
        if seq < m.last_seq_sent:
            return result(AckStatus.STALE_SEQ,
                          "SEQ %d is older than the last SEQ sent to this member (%d)"
                          % (seq, m.last_seq_sent))
        if seq > m.last_seq_sent:
            return result(AckStatus.UNEXPECTED_SEQ,
                          "SEQ %d was never sent to this member (last sent: %d)"
                          % (seq, m.last_seq_sent))
        if m.last_transport != TRANSPORT_UNICAST:
            return result(AckStatus.UNEXPECTED_SEQ,
                          "SEQ %d was a multicast rekey, which expects no ACK" % seq)
        if m.last_acked_seq == seq:
            return result(AckStatus.DUPLICATE, "SEQ %d already acknowledged; ignored" % seq)
        m.last_acked_seq = seq
        m.awaiting_ack_seq = None
        m.unacked_seqs.clear()
        return result(AckStatus.RECORDED, "SEQ %d recorded" % seq)


_ACK_KIND_WORDS = {ACK_KIND_RFC8263: "RFC 8263 (I-D)", ACK_KIND_CISCO: "Cisco"}


# -- Configuration ------------------------------------------------------------------------

class ConfigError(ValueError):
    """A configuration line that is unknown, malformed, out of range or breaks a
    restriction. ``lineno`` is 1-based; ``line`` is the line as written."""

    def __init__(self, lineno, line, message):
        self.lineno = lineno
        self.line = line
        self.message = message
        super().__init__("line %d: %r: %s" % (lineno, line, message))


def d3p_window_to_ms(unit, value):
    """A configured D3P window (``sec N`` or ``msec N``) in milliseconds.

    Ranges from the seed: sec 1..100, msec 100..10000 (both inclusive).
    :raises ValueError: unknown unit or value out of range.
    """
    ranges = {"sec": (D3P_WINDOW_SEC_RANGE, 1000), "msec": (D3P_WINDOW_MSEC_RANGE, 1)}
    if unit not in ranges:
        raise ValueError("D3P window unit must be 'sec' or 'msec', not %r" % (unit,))
    (low, high), scale = ranges[unit]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("D3P window must be an int, not %s" % type(value).__name__)
    if not low <= value <= high:
        raise ValueError("%s %d is out of range (%d-%d)" % (unit, value, low, high))
    return value * scale


@dataclasses.dataclass
class GroupConfig:
    """One ``crypto gkm group`` as parsed by :func:`parse_config`."""

    name: str
    role: str = ROLE_MEMBER
    #: Key server: ``sa d3p window``, in ms; None when IP-D3P is off.
    d3p_window_ms: Optional[int] = None
    #: Member: ``client d3p window`` override, in ms; None when not configured.
    client_d3p_window_ms: Optional[int] = None
    ack_option: str = ACK_CISCO
    rekey_transport: str = TRANSPORT_MULTICAST
    #: ``sa ipsec N`` numbers, in the order configured.
    ipsec_sas: Tuple[int, ...] = ()
    features: FrozenSet[str] = frozenset()
    #: Recognised lines this model does not interpret: (line number, line), kept so that
    #: nothing read is silently lost.
    other_lines: Tuple[Tuple[int, str], ...] = ()

    @property
    def d3p_type(self):
        """D3P timestamp type announced (only POSIX-TIME-MSEC exists), or None."""
        return D3P_TS_POSIX_TIME_MSEC if self.d3p_window_ms is not None else None

    @property
    def ack_in_use(self):
        """ACK option actually used, or None with multicast rekeys (no ACK expected)."""
        return self.ack_option if self.rekey_transport == TRANSPORT_UNICAST else None

    def effective_d3p_window_ms(self, ks_window_ms, member_kind=MEMBER_CISCO):
        """For a member group: the window it enforces given the key server's window."""
        if self.role != ROLE_MEMBER:
            raise ValueError("group %r is a key server; the effective window is a member's"
                             % self.name)
        return effective_d3p_window_ms(ks_window_ms, self.client_d3p_window_ms, member_kind)


def effective_d3p_window_ms(ks_window_ms, client_window_ms=None, member_kind=MEMBER_CISCO):
    """The D3P window in ms a member enforces, or None when D3P is off.

    The key server turns D3P on by announcing it (GAP D3P_TYPE/D3P_WINDOW_SIZE);
    a member's ``client d3p window`` replaces the window (seed: KS ``msec 1000`` and
    member ``sec 50`` give 50000). An ASR 9000 cannot override (seed note).
    """
    _check_choice(member_kind, MEMBER_KINDS, "member kind")
    for value, what in ((ks_window_ms, "key server D3P window"),
                        (client_window_ms, "client D3P window")):
        if value is not None:
            _check_non_negative_int(value, what)
            if value == 0:
                raise ValueError("%s must be positive" % what)
    if client_window_ms is not None and member_kind == MEMBER_ASR9000:
        raise ValueError("an ASR 9000 member cannot override the D3P window; "
                         "it uses the key server's")
    if ks_window_ms is None:
        return None
    return ks_window_ms if client_window_ms is None else client_window_ms


# Parser modes, named after the IOS prompts.
_GLOBAL = "config"
_GROUP = "config-gkm-group"
_SERVER = "gdoi-local-server"
_SA = "gdoi-sa-ipsec"
_PARENT = {_SA: _SERVER, _SERVER: _GROUP, _GROUP: _GLOBAL, _GLOBAL: None}

# "Device(gdoi-local-server)# " / "Device# " / "Device> " in front of a command.
_PROMPT = re.compile(r"^[A-Za-z0-9_.\-]+(?:\([A-Za-z0-9_.\-]+\))?[#>]\s*")
_SA_NUMBER_RANGE = (1, 65535)  # policy: IOS-like `sa ipsec` sequence numbers


class _GroupState:
    """A group being parsed: the values plus the line each feature came from."""

    def __init__(self, name):
        self.name = name
        self.server_local_line = None
        self.member_line = None  # first line that makes the device a member
        self.d3p_window_ms = None
        self.d3p_line = None
        self.client_d3p_window_ms = None
        self.ack_option = ACK_CISCO
        self.rekey_transport = TRANSPORT_MULTICAST
        self.feature_lines = {}  # feature -> line number (group-wide features)
        self.sas = {}  # SA number -> line number
        self.tagged_sas = {}  # SA number -> line number of its `tag cts sgt`
        self.other_lines = []

    def enabled_features(self):
        """Group-wide features with the line that enabled them (tagging: its first SA)."""
        lines = dict(self.feature_lines)
        if self.tagged_sas:
            lines[FEATURE_INLINE_TAGGING] = min(self.tagged_sas.values())
        return lines

    def freeze(self):
        return GroupConfig(
            name=self.name,
            role=ROLE_KEY_SERVER if self.server_local_line is not None else ROLE_MEMBER,
            d3p_window_ms=self.d3p_window_ms,
            client_d3p_window_ms=self.client_d3p_window_ms,
            ack_option=self.ack_option,
            rekey_transport=self.rekey_transport,
            ipsec_sas=tuple(self.sas),
            features=frozenset(self.enabled_features()),
            other_lines=tuple(self.other_lines),
        )


class _Parser:
    """Mode-stack reader of IOS-style configuration text (grammar: module docstring)."""

    def __init__(self):
        self.groups = {}  # name -> _GroupState, in first-seen order
        self.group = None
        self.sa = None
        self.mode = _GLOBAL
        self.lineno = 0
        self.line = ""  # as written, for errors
        self.command = ""  # without indentation and prompt

    def error(self, message):
        return ConfigError(self.lineno, self.line, message)

    # -- driving

    def parse(self, text):
        for self.lineno, self.line in enumerate(text.splitlines(), 1):
            self.command = _PROMPT.sub("", self.line.strip(), count=1)
            if not self.command or self.command.startswith("!"):
                continue
            self.dispatch(self.command.split())
        return [g.freeze() for g in self.groups.values()]

    def dispatch(self, tokens):
        negate = tokens[0].lower() == "no"
        words = tokens[1:] if negate else tokens
        if not words:
            raise self.error("'no' needs a command after it")
        keys = [w.lower() for w in words]
        if not negate and self.session_command(keys):
            return
        mode = self.mode
        while mode is not None:
            for prefix, handler in _COMMANDS[mode]:
                if tuple(keys[:len(prefix)]) == prefix:
                    self.leave_to(mode)
                    handler(self, words[len(prefix):], negate)
                    return
            mode = _PARENT[mode]
        raise self.error("unknown command in %s mode (and in every enclosing mode)"
                         % self.mode)

    def session_command(self, keys):
        if keys in (["enable"], ["configure", "terminal"], ["conf", "t"]):
            return True
        if keys == ["end"]:
            self.leave_to(_GLOBAL)
            return True
        if keys == ["exit"]:
            if self.mode != _GLOBAL:
                self.leave_to(_PARENT[self.mode])
            return True
        return False

    def leave_to(self, mode):
        """Make ``mode`` current, leaving the SA / group contexts it is above."""
        if mode != _SA:
            self.sa = None
        if mode == _GLOBAL:
            self.group = None
        self.mode = mode

    # -- argument helpers

    def expect_no_args(self, args, command):
        if args:
            raise self.error("'%s' takes no arguments (unexpected %r)"
                             % (command, " ".join(args)))

    def window_ms(self, args, command):
        if len(args) != 2 or args[0].lower() not in ("sec", "msec"):
            raise self.error("expected '%s {sec N | msec N}'" % command)
        unit, text = args[0].lower(), args[1]
        if not re.fullmatch(r"[0-9]+", text):
            raise self.error("window %r is not a whole number" % text)
        try:
            return d3p_window_to_ms(unit, int(text))
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def keep_line(self):
        """Record a recognised line this model does not interpret (nothing is lost)."""
        self.group.other_lines.append((self.lineno, self.command))

    # -- restrictions (seed, "Restrictions for GET VPN Interoperability")

    def check_d3p_against_features(self):
        for feature, line in self.group.enabled_features().items():
            if feature in _D3P_INCOMPATIBLE:
                raise self.error("IP-D3P cannot coexist with %s (enabled at line %d); "
                                 "disable it first" % (_D3P_INCOMPATIBLE[feature], line))

    def check_feature_against_d3p(self, feature):
        if self.group.d3p_line is not None:
            raise self.error("%s cannot coexist with IP-D3P (enabled at line %d); "
                             "disable it first ('no sa d3p window')"
                             % (_D3P_INCOMPATIBLE[feature], self.group.d3p_line))

    def check_atd_single_sa(self):
        g = self.group
        if FEATURE_ACTIVATION_TIME_DELAY in g.feature_lines and len(g.sas) > 1:
            listing = ", ".join("'sa ipsec %d' (line %d)" % item for item in g.sas.items())
            raise self.error("Activation Time Delay (line %d) supports a single IPsec SA, "
                             "but %s are configured"
                             % (g.feature_lines[FEATURE_ACTIVATION_TIME_DELAY], listing))

    def become_member(self, command):
        g = self.group
        if g.server_local_line is not None:
            raise self.error("'%s' is a group-member command, but this device is the key "
                             "server of group %r ('server local' at line %d)"
                             % (command, g.name, g.server_local_line))
        if g.member_line is None:
            g.member_line = self.lineno

    # -- global mode

    def cmd_group(self, args, negate):
        if len(args) != 1:
            raise self.error("expected 'crypto gkm group NAME' (one word)")
        name = args[0]
        if negate:
            self.groups.pop(name, None)
            return
        self.group = self.groups.setdefault(name, _GroupState(name))
        self.mode = _GROUP

    # -- group mode

    def cmd_server_local(self, args, negate):
        self.expect_no_args(args, "server local")
        g = self.group
        if negate:
            raise self.error("'no server local' is not supported; remove the group instead")
        if g.member_line is not None:
            raise self.error("group %r is already configured as a member (line %d); "
                             "a device is either key server or member"
                             % (g.name, g.member_line))
        if g.server_local_line is None:
            g.server_local_line = self.lineno
        self.mode = _SERVER

    def cmd_server_address(self, args, negate):
        self.become_member("server address")
        if len(args) != 2 or args[0].lower() not in ("ipv4", "ipv6"):
            raise self.error("expected 'server address ipv4 ADDRESS'")
        self.keep_line()

    def cmd_client_d3p(self, args, negate):
        self.become_member("client d3p window")
        # `no client d3p window [sec N | msec N]`: arguments, when given, must be valid.
        window = self.window_ms(args, "client d3p window") if args or not negate else None
        self.group.client_d3p_window_ms = None if negate else window

    # -- key-server mode

    def cmd_sa_d3p(self, args, negate):
        g = self.group
        window = self.window_ms(args, "sa d3p window") if args or not negate else None
        if negate:
            g.d3p_window_ms = g.d3p_line = None
            return
        self.check_d3p_against_features()
        g.d3p_window_ms, g.d3p_line = window, self.lineno

    def cmd_ack(self, args, negate):
        if (args or not negate) and (len(args) != 1 or args[0].lower() not in ACK_OPTIONS):
            raise self.error("expected 'rekey acknowledgement {cisco | interoperable | any}'")
        # Seed: `no rekey acknowledgement` sets the default, cisco.
        self.group.ack_option = ACK_CISCO if negate else args[0].lower()

    def cmd_transport(self, args, negate):
        if len(args) != 1 or args[0].lower() != TRANSPORT_UNICAST:
            raise self.error("expected 'rekey transport unicast' "
                             "(multicast is the default: 'no rekey transport unicast')")
        self.group.rekey_transport = TRANSPORT_MULTICAST if negate else TRANSPORT_UNICAST

    def cmd_atd(self, args, negate):
        self.expect_no_args(args, "rekey activation-time-delay")
        g = self.group
        if negate:
            g.feature_lines.pop(FEATURE_ACTIVATION_TIME_DELAY, None)
            return
        g.feature_lines.setdefault(FEATURE_ACTIVATION_TIME_DELAY, self.lineno)
        self.check_atd_single_sa()

    def cmd_d3p_incompatible_feature(self, feature, command, args, negate):
        """`cisco-metadata`, `gm error-detection`: group-wide switches that IP-D3P excludes."""
        self.expect_no_args(args, command)
        if negate:
            self.group.feature_lines.pop(feature, None)
            return
        self.check_feature_against_d3p(feature)
        self.group.feature_lines.setdefault(feature, self.lineno)

    def cmd_sa_ipsec(self, args, negate):
        low, high = _SA_NUMBER_RANGE
        if len(args) != 1 or not re.fullmatch(r"[0-9]+", args[0]):
            raise self.error("expected 'sa ipsec N' with N a whole number")
        number = int(args[0])
        if not low <= number <= high:
            raise self.error("IPsec SA number %d is out of range (%d-%d)" % (number, low, high))
        g = self.group
        if negate:
            g.sas.pop(number, None)
            g.tagged_sas.pop(number, None)
            return
        g.sas.setdefault(number, self.lineno)
        self.check_atd_single_sa()
        self.sa = number
        self.mode = _SA

    # -- IPsec SA mode

    def cmd_tag(self, args, negate):
        self.expect_no_args(args, "tag cts sgt")
        if negate:
            self.group.tagged_sas.pop(self.sa, None)
            return
        self.check_feature_against_d3p(FEATURE_INLINE_TAGGING)
        self.group.tagged_sas.setdefault(self.sa, self.lineno)

    def cmd_keep(self, args, negate):
        self.keep_line()


def _feature_switch(feature, command):
    """Handler for a no-argument feature switch (see cmd_d3p_incompatible_feature)."""
    def handler(parser, args, negate):
        parser.cmd_d3p_incompatible_feature(feature, command, args, negate)
    return handler


def _no_negation(handler):
    """Wrap a handler whose command has no 'no' form in this model."""
    def wrapped(parser, args, negate):
        if negate:
            raise parser.error("the 'no' form of this command is not supported")
        handler(parser, args, negate)
    return wrapped


#: Per mode: (keyword prefix, handler), longest prefixes first where they overlap.
_COMMANDS = {
    _GLOBAL: [
        (("crypto", "gkm", "group"), _Parser.cmd_group),
        (("crypto", "gdoi", "group"), _Parser.cmd_group),
    ],
    _GROUP: [
        (("server", "local"), _Parser.cmd_server_local),
        (("server", "address"), _no_negation(_Parser.cmd_server_address)),
        (("client", "d3p", "window"), _Parser.cmd_client_d3p),
        (("identity",), _no_negation(_Parser.cmd_keep)),
    ],
    _SERVER: [
        (("sa", "d3p", "window"), _Parser.cmd_sa_d3p),
        (("sa", "ipsec"), _Parser.cmd_sa_ipsec),
        (("rekey", "acknowledgement"), _Parser.cmd_ack),
        (("rekey", "acknowledgment"), _Parser.cmd_ack),
        (("rekey", "transport"), _Parser.cmd_transport),
        (("rekey", "activation-time-delay"), _Parser.cmd_atd),
        (("cisco-metadata",), _feature_switch(FEATURE_CISCO_METADATA, "cisco-metadata")),
        (("gm", "error-detection"),
         _feature_switch(FEATURE_GM_ERROR_DETECTION, "gm error-detection")),
    ] + [(words, _no_negation(_Parser.cmd_keep)) for words in (
        ("rekey", "address"), ("rekey", "lifetime"), ("rekey", "retransmit"),
        ("rekey", "authentication"), ("rekey", "algorithm"), ("address",),
        ("redundancy",))],
    _SA: [
        (("tag", "cts", "sgt"), _Parser.cmd_tag),
    ] + [(words, _no_negation(_Parser.cmd_keep)) for words in (
        ("profile",), ("match",), ("replay",))],
}


def parse_config(text):
    """Parse IOS-style configuration text into one :class:`GroupConfig` per group.

    Groups come back in the order they first appear. The grammar, the restrictions
    enforced and the decisions taken are in the module docstring.

    :raises ConfigError: first bad line (unknown, malformed, out of range, or breaking a
        restriction), with its line number and text.
    """
    if not isinstance(text, str):
        raise TypeError("configuration must be text (str), not %s" % type(text).__name__)
    return _Parser().parse(text)


# -- Cooperative key servers (seed, "... Support for Cooperative Key Server") --------------

#: Syslog lines of a secondary key server whose configuration differs from the primary's
#: announcement, exactly as the seed prints them (the second is one line; the seed wraps it).
COOP_D3P_MISMATCH = ("%GDOI-3-COOP_CONFIG_MISMATCH: WARNING: IP-D3P configuration "
                     "between Primary KS and Secondary KS are mismatched")
COOP_ACK_MISMATCH = ("%GDOI-3-COOP_CONFIG_MISMATCH: WARNING: Interoperable Rekey ACK "
                     "configuration between Primary KS and Secondary KS are mismatched")


@dataclasses.dataclass(frozen=True)
class CoopAnnouncement:
    """What a primary key server's announcement says about D3P and ACKs.

    ``d3p_type``/``d3p_window_ms``: the GAP's D3P_TYPE and D3P_WINDOW_SIZE (None when
    absent); ``kek_ack_requested``: the KEK SA's KEK_ACK_REQUESTED value (None when absent).
    """

    d3p_type: Optional[int] = None
    d3p_window_ms: Optional[int] = None
    kek_ack_requested: Optional[int] = None

    @classmethod
    def from_config(cls, config):
        """The announcement a primary with this key-server configuration sends."""
        if config.role != ROLE_KEY_SERVER:
            raise ValueError("group %r is not a key-server group" % config.name)
        return cls(config.d3p_type, config.d3p_window_ms, _announced_ack(config.ack_in_use))


def _announced_ack(ack_in_use):
    # The announcement tells cooperative key servers to send KEK_ACK_REQUESTED to their
    # members; with `any` some members get it (Table 1), so it is announced as well.
    # With multicast rekeys no ACK is expected and the KEK SA carries no
    # KEK_ACK_REQUESTED (module decision above): `ack_in_use` is None, nothing announced.
    return None if ack_in_use in (None, ACK_CISCO) else KEK_ACK_SHA256


def coop_config_mismatches(announcement, secondary):
    """Warnings a secondary key server logs on receiving a primary's announcement.

    :param announcement: :class:`CoopAnnouncement` from the primary.
    :param secondary: the secondary's own key-server :class:`GroupConfig`.
    :returns: a list holding :data:`COOP_D3P_MISMATCH` and/or :data:`COOP_ACK_MISMATCH`
        (in that order), empty when both agree.
    """
    expected = CoopAnnouncement.from_config(secondary)
    warnings = []
    if ((announcement.d3p_type, announcement.d3p_window_ms)
            != (expected.d3p_type, expected.d3p_window_ms)):
        warnings.append(COOP_D3P_MISMATCH)
    if announcement.kek_ack_requested != expected.kek_ack_requested:
        warnings.append(COOP_ACK_MISMATCH)
    return warnings


# -- show renderers (formats from the seed's sample outputs) ------------------------------

_ACK_LABELS = {ACK_CISCO: "Cisco", ACK_INTEROPERABLE: "Interoperable", ACK_ANY: "Any"}
_TRANSPORT_LABELS = {TRANSPORT_UNICAST: "Unicast", TRANSPORT_MULTICAST: "Multicast"}


def _key_server(config):
    if config.role != ROLE_KEY_SERVER:
        raise ValueError("group %r is not a key-server group (no 'server local')"
                         % config.name)
    return config


def render_ks_replay(configs):
    """``show crypto gkm ks replay`` for one key-server group or several.

    One "Anti-replay Information For Group NAME:" block per key-server group (member
    groups are skipped); the IP-D3P line appears only when D3P is configured.
    """
    if isinstance(configs, GroupConfig):
        configs = [configs]
    lines = []
    for config in configs:
        if config.role != ROLE_KEY_SERVER:
            continue
        lines.append("Anti-replay Information For Group %s:" % config.name)
        if config.d3p_window_ms is not None:
            lines.append("  IP-D3P: Type = %s, Window-size = %d msec"
                         % (D3P_TIMESTAMP_TYPES[config.d3p_type], config.d3p_window_ms))
    return "\n".join(lines)


def render_gkm_ack_line(config):
    """The ``show crypto gkm`` line under "Group Rekey": the configured ACK option."""
    return "    Acknowledgement Cfg : %s" % _ACK_LABELS[_key_server(config).ack_option]


def render_ks_ack_line(config):
    """The ``show crypto gkm ks`` line: the configured ACK option."""
    return "  Rekey Acknowledgement Cfg: %s" % _ACK_LABELS[_key_server(config).ack_option]


def render_ks_rekey_ack(config):
    """``show crypto gkm ks rekey`` head: group, transport and the ACK type in use
    (None with multicast rekeys)."""
    config = _key_server(config)
    in_use = config.ack_in_use
    return "Group %s (%s)\n  Acknowledgement Type In-Use      : %s" % (
        config.name, _TRANSPORT_LABELS[config.rekey_transport],
        "None" if in_use is None else _ACK_LABELS[in_use])


def render_kek_policy_ack(config):
    """``show crypto gkm ks policy``: the KEK POLICY head and its acknowledgement line
    (lower case, ``none`` with multicast rekeys)."""
    config = _key_server(config)
    in_use = config.ack_in_use
    return "KEK POLICY (transport type : %s)\n  acknowledgement    : %s" % (
        _TRANSPORT_LABELS[config.rekey_transport], "none" if in_use is None else in_use)
