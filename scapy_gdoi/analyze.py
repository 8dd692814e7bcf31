# SPDX-License-Identifier: GPL-2.0-only
"""``gdoi analyze CAPTURE [--keys keys.json] [--json]``: read GDOI traffic from a capture.

For every GDOI message on UDP 848 (IPv4 / IPv6, pcap or pcapng, streamed in constant
memory by :mod:`scapy_gdoi.capture`) the analyser reports what it is and what the keys
allow it to prove:

* ``phase1`` (Main / Aggressive / Informational) and ``pull`` (GROUPKEY-PULL): encrypted
  with phase-1 keys we do not have, so reported as not decrypted; a plaintext PULL (as
  in the *-plaintext-DERIVED* captures) is dissected, and its SA KEK / KD keys fill in
  SPIs that have no key yet (it is not authenticated: it never replaces a key).
* ``rekey`` (GROUPKEY-PUSH): decrypted with the KEK of its cookies, signature checked
  (RFC 6407 §4.7, facts §4.3; SIG_KEY_LENGTH must match the key), GAP / SA KEK / SA
  TEKs reported. Only an encrypted rekey whose signature is ``valid`` moves the SEQ
  baseline (replays and gaps reported) and teaches keys (new KEKs and
  SIG_ALGORITHM_KEYs from its KD); others are compared with the baseline, and a PUSH
  without the E flag is flagged and teaches nothing.
* ``ack`` (RFC 8263, DECISIONS.md §2): HASH checked, matched to its rekey.
* ``cisco-ack`` (DECISIONS.md §2): decrypted with the KEK, required to be exactly
  SEQ + ID, matched to its rekey. It has no HASH, so its ``ack.hash`` is at best
  ``unverified`` (with the reason). An encrypted message whose cookies are a known KEK
  SPI and whose exchange is neither PUSH nor PUSH-ACK is classified as one too.
* ``other``: anything else on the port (non-GDOI ISAKMP, garbage).

Keys from the keys file are never replaced. Every table kept between messages is
bounded (MAX_* constants below, keys.MAX_LEARNED_KEKS), so memory stays constant
however many KEK SPIs, rekeys or members a capture holds.

Each report is a dict (see :data:`FIELDS`); problems with one frame go in its
``error`` field (``warning`` for oddities that do not stop the analysis of the frame,
such as octets after the ISAKMP Length) and the analysis carries on.
"""
import collections
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import sys

from scapy_gdoi import _consts as C

#: Every report has these keys (None when they do not apply).
FIELDS = ("frame", "time", "src", "dst", "kind", "exchange", "kek_spi", "seq",
          "seq_status", "encrypted", "decrypted", "signature", "sig_hash", "gap", "kek", "teks",
          "deletes", "learned_keks", "ack", "warning", "error")

KIND_PHASE1, KIND_PULL, KIND_REKEY = "phase1", "pull", "rekey"
KIND_ACK, KIND_CISCO_ACK, KIND_OTHER = "ack", "cisco-ack", "other"

_KIND_BY_EXCHANGE = {
    C.EXCH_MAIN_MODE: KIND_PHASE1, C.EXCH_AGGRESSIVE: KIND_PHASE1,
    C.EXCH_INFORMATIONAL: KIND_PHASE1, C.EXCH_GROUPKEY_PULL: KIND_PULL,
    C.EXCH_GROUPKEY_PUSH: KIND_REKEY, C.EXCH_GROUPKEY_PUSH_ACK: KIND_ACK,
    C.EXCH_CISCO_REKEY_ACK: KIND_CISCO_ACK,
}

#: Exchanges that carry a KEK SPI as cookies under their own exchange type.
_KEK_COOKIE_EXCHANGES = (C.EXCH_GROUPKEY_PUSH, C.EXCH_GROUPKEY_PUSH_ACK)

#: Caps on the analyser's bookkeeping, so memory stays constant whatever the capture
#: holds (a hostile capture may use a new random KEK SPI, SEQ or member ID per frame);
#: least recently used entries go first (scapy_gdoi.bounded).
#: KEKs whose last SEQ is tracked: far above the KEKs alive in real captures (one per
#: group, replaced every few hours).
MAX_TRACKED_KEKS = 4096
#: Rekeys remembered per KEK for ACK matching. ACKs follow their rekey within seconds
#: (RFC 8263), so the last 256 rekeys of a KEK are plenty.
REKEYS_REMEMBERED_PER_KEK = 256
#: KEKs whose recent rekeys are remembered for ACK matching (the live KEKs of the groups
#: in the capture): at most 64 x 256 rekeys in all.
MAX_KEKS_REMEMBERED_FOR_ACKS = 64
#: (KEK SPI, SEQ, member) of ACKs seen, to flag duplicates: a few rekeys' worth of ACKs
#: from a group of thousands of members.
MAX_REMEMBERED_ACKS = 16384

SEQ_FIRST, SEQ_OK, SEQ_REPLAY, SEQ_GAP = "first", "ok", "replay", "gap"


class _SeqTracker:
    """Last accepted SEQ per KEK (RFC 6407 §3.2: each PUSH is previous + 1), bounded."""

    def __init__(self):
        from scapy_gdoi.bounded import BoundedLRU
        self.last = BoundedLRU(MAX_TRACKED_KEKS)

    def baseline(self, spi, seq):
        if spi not in self.last:
            self.last[spi] = seq

    def check(self, spi, seq, advance=True):
        """(status, missing count) for a rekey; advances on first/ok/gap when `advance`
        (only authenticated rekeys move the baseline)."""
        last = self.last.touch(spi)
        if last is None:
            if advance:
                self.last[spi] = seq
            return SEQ_FIRST, 0
        if seq <= last:
            return SEQ_REPLAY, 0
        if advance:
            self.last[spi] = seq
        return (SEQ_OK, 0) if seq == last + 1 else (SEQ_GAP, seq - last - 1)


class Analyzer:
    """Turns GDOI datagrams into report dicts; keeps the key store and the SEQ / ACK
    bookkeeping between messages."""

    def __init__(self, keystore=None):
        from scapy_gdoi.bounded import BoundedLRU
        from scapy_gdoi.keys import KeyStore
        self.keys = keystore if keystore is not None else KeyStore()
        self.seqs = _SeqTracker()
        # spi -> {seq -> frame of the rekey}; (spi, seq, member) of the ACKs seen.
        self.rekeys = BoundedLRU(MAX_KEKS_REMEMBERED_FOR_ACKS)
        self.acked = BoundedLRU(MAX_REMEMBERED_ACKS)
        # spi -> (frame, why) of KEKs announced by rekeys that could not teach them.
        self.unlearnt = BoundedLRU(MAX_TRACKED_KEKS)
        # spi -> KEK_ACK_REQUESTED of the last decrypted rekey's SA KEK (RFC 8263).
        self.requested_acks = BoundedLRU(MAX_TRACKED_KEKS)
        self.counts = collections.Counter()

    # -- entry point -------------------------------------------------------------------

    def analyze(self, datagram):
        """The report dict for one :class:`~scapy_gdoi.capture.Datagram`."""
        from scapy_gdoi import crypto, wire
        report = dict.fromkeys(FIELDS)
        report.update(frame=datagram.frame, time=datagram.time, src=datagram.src,
                      dst=datagram.dst, kind=KIND_OTHER, decrypted=False)
        if datagram.payload is None:
            report["error"] = datagram.error
        else:
            try:
                self._analyze_message(report, datagram.payload)
            except (wire.WireError, crypto.GDOICryptoError, ValueError,
                    crypto.CryptoUnavailable) as exc:
                _add_error(report, str(exc))
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop a capture
                _add_error(report, "internal error on this frame: %s: %s" % (
                    type(exc).__name__, exc))
            if datagram.error:
                # The capture-level cause first (e.g. cut by the snap length).
                report["error"] = "; ".join(e for e in (datagram.error, report["error"]) if e)
        self._count(report)
        return report

    def _count(self, report):
        self.counts[report["kind"]] += 1
        if report["error"]:
            self.counts["errors"] += 1
        if report["warning"]:
            self.counts["warnings"] += 1
        if report["signature"]:
            self.counts["signature " + report["signature"]] += 1
        if report["seq_status"] in (SEQ_REPLAY, SEQ_GAP):
            self.counts["seq " + report["seq_status"]] += 1
        if report["ack"]:
            self.counts["ack hash " + report["ack"]["hash"]] += 1
            if report["ack"]["rekey_frame"] is None:
                self.counts["ack unmatched"] += 1

    def _analyze_message(self, report, message):
        from scapy_gdoi import wire
        header = wire.Header(message)
        exchange = C.GDOI_EXCHANGE_TYPES.get(header.exch_type, str(header.exch_type))
        report["exchange"] = exchange
        report["encrypted"] = header.encrypted
        if header.version != C.ISAKMP_VERSION:
            report["error"] = "not GDOI: ISAKMP version %d.%d" % (
                header.version >> 4, header.version & 0x0F)
            return
        kind = self._kind(header)
        report["kind"] = kind
        if header.length > len(message):
            raise wire.WireError("truncated message: header Length %d, %d octets received"
                                 % (header.length, len(message)))
        if header.length >= wire.HEADER_LEN and len(message) > header.length:
            # RFC 2408 §3.1: Length is the whole message; anything after it is not
            # part of the message (analysed without it), but worth seeing.
            _add_warning(report, "%d octet(s) after the ISAKMP Length %d ignored" % (
                len(message) - header.length, header.length))
        message = message[:max(header.length, wire.HEADER_LEN)]
        if kind == KIND_OTHER:
            report["error"] = "not a GDOI exchange (exchange type %d)" % header.exch_type
        elif kind in (KIND_PHASE1, KIND_PULL):
            self._phase1_or_pull(report, header, message)
        elif kind == KIND_REKEY:
            self._rekey(report, header, message)
        elif kind == KIND_ACK:
            self._ack(report, header, message)
        else:
            self._cisco_ack(report, header, message)

    def _kind(self, header):
        """The message kind, by exchange type, with the Cisco ACK fallback.

        The Cisco ACK's exchange type is undocumented (EXCH_CISCO_REKEY_ACK is a project
        decision, DECISIONS.md §2), but it is the only encrypted message whose cookies
        are a KEK SPI other than the PUSH itself and the (plaintext) RFC 8263 ACK: such
        a message is classified as a Cisco ACK whatever its exchange byte says.
        """
        if (header.encrypted and header.exch_type not in _KEK_COOKIE_EXCHANGES
                and self.keys.kek(header.spi) is not None):
            return KIND_CISCO_ACK
        return _KIND_BY_EXCHANGE.get(header.exch_type, KIND_OTHER)

    # -- per kind ----------------------------------------------------------------------

    def _phase1_or_pull(self, report, header, message):
        if header.encrypted:
            return  # phase-1 keys are not ours: reported as not decrypted
        if report["kind"] == KIND_PULL:
            # A plaintext PULL (only the *-plaintext-DERIVED* test captures have one) is
            # not authenticated: it may fill in SPIs with no key yet, never replace one.
            summary = self._plaintext_summary(report, message)
            learned = self.keys.learn(summary, only_new=True)
            for spi in learned:
                if summary.seq is not None:
                    self.seqs.baseline(spi, summary.seq)
            report["learned_keks"] = [spi.hex() for spi in learned] or None

    def _plaintext_summary(self, report, plain):
        from scapy_gdoi.summary import summarize_bytes
        summary = summarize_bytes(plain)
        report["seq"] = summary.seq
        report["gap"] = summary.gap
        report["teks"] = summary.teks
        report["deletes"] = summary.deletes or None
        if summary.keks:
            report["kek"] = _kek_report(summary.keks[0])
        return summary

    def _rekey(self, report, header, message):
        from scapy_gdoi import rekey
        spi = header.spi
        report["kek_spi"] = spi.hex()
        kek = self.keys.kek(spi)
        if not header.encrypted:
            plain = message
            _add_error(report, "GROUPKEY-PUSH without the E flag (RFC 6407 §4 sends it "
                               "encrypted): nothing learnt from it, SEQ not tracked")
        elif kek is None:
            report["signature"] = rekey.SIG_UNVERIFIED
            report["error"] = "cannot decrypt: " + self._no_kek_reason(spi)
            return
        else:
            plain = kek.decrypt_bytes(message)
            problem = rekey.plaintext_problem(plain, kek.cipher.block_size)
            if problem:
                self._undecryptable(report, spi, plain, problem)
                return
            report["decrypted"] = True
        summary = self._plaintext_summary(report, plain)
        if report["decrypted"]:
            self._remember_requested_ack(spi, summary)
        if report["kek"] is None and kek is not None:
            report["kek"] = _kek_context_report(kek)
        self._check_signature(report, kek, plain, summary)
        # Only a rekey whose origin is proven (encrypted under a KEK and validly signed,
        # RFC 6407 §4.7) moves the SEQ baseline or teaches keys; others are compared
        # against the authenticated baseline without changing it.
        trusted = header.encrypted and report["signature"] == rekey.SIG_VALID
        if not trusted:
            self._remember_unlearnt(report, summary, header.encrypted)
        if summary.seq is None:
            _add_error(report, "GROUPKEY-PUSH without a SEQ payload")
            return
        if report["signature"] == rekey.SIG_INVALID:
            return
        status, missing = self.seqs.check(spi, summary.seq, advance=trusted)
        report["seq_status"] = status
        if missing:
            _add_error(report, "%d rekey(s) missing before SEQ %d" % (missing, summary.seq))
        elif status == SEQ_REPLAY:
            _add_error(report, "SEQ %d is not above the last accepted SEQ %d (replay)" % (
                summary.seq, self.seqs.last[spi]))
        self._remember_rekey(spi, summary.seq, report["frame"])
        if trusted:
            learned = self.keys.learn(summary, via_spi=spi)
            report["learned_keks"] = [s.hex() for s in learned] or None

    def _remember_requested_ack(self, spi, summary):
        """The ACK method this KEK's rekeys ask for, to judge the ACKs that answer them
        (the SA KEK of this SPI first, else the one a KEK roll describes)."""
        own = [p.ack_requested for p in summary.keks if p.spi == spi]
        others = [p.ack_requested for p in summary.keks if p.ack_requested is not None]
        requested = (own or others or [None])[0]
        if requested is not None:
            self.requested_acks[spi] = requested

    def _undecryptable(self, report, spi, plain, problem):
        """A rekey whose plaintext is broken: "invalid" only when the first block shows
        the KEK was right (so the ciphertext was altered); otherwise nothing was checked
        and the signature stays "unverified" (a wrong KEK looks exactly like that)."""
        from scapy_gdoi import rekey
        if rekey.right_kek_evident(plain):
            report["signature"] = rekey.SIG_INVALID
            report["error"] = ("altered ciphertext: the KEK of SPI %s decrypts the first "
                               "block cleanly, but %s" % (spi.hex(), problem))
        else:
            report["signature"] = rekey.SIG_UNVERIFIED
            report["error"] = ("cannot decrypt with the KEK of SPI %s: %s (wrong KEK, or "
                               "the first block altered)" % (spi.hex(), problem))

    def _remember_unlearnt(self, report, summary, encrypted):
        """Remember KEKs this untrusted rekey announced but did not teach, so a later
        "no KEK known" error can say why (the learning rule itself stays)."""
        if not summary.kek_keys:
            return
        if not encrypted:
            why = "it was sent without the E flag"
        elif report["signature"] == "invalid":
            why = "its signature is invalid"
        else:
            why = ("keys are only learnt from rekeys whose signature verifies, and no "
                   "signing key was known to verify it; add a signing key "
                   "(\"signing_keys\" in the keys file)")
        for key_info in summary.kek_keys:
            if self.keys.kek(key_info.spi) is None:
                self.unlearnt[key_info.spi] = (report["frame"], why)

    def _no_kek_reason(self, spi):
        """"no KEK known for SPI ..." plus, when a rekey announced that KEK but could
        not teach it, which rekey and why."""
        text = "no KEK known for SPI %s" % spi.hex()
        announced = self.unlearnt.touch(spi)
        if announced is not None:
            text += ": rekey #%s announced it, but it was not learnt: %s" % announced
        return text

    def _check_signature(self, report, kek, plain, summary):
        from scapy_gdoi import crypto, rekey
        if kek is None or kek.public_key is None:
            report["signature"] = rekey.SIG_UNVERIFIED
            return
        mismatch = _sig_key_length_problem(kek, summary, self.keys)
        if mismatch:
            report["signature"] = rekey.SIG_INVALID
            _add_error(report, mismatch)
            return
        try:
            used = kek.signature_hash(plain)
        except crypto.GDOICryptoError as exc:  # e.g. no SIG payload at all
            used = None
            _add_error(report, str(exc))
        report["signature"] = rekey.SIG_VALID if used else rekey.SIG_INVALID
        report["sig_hash"] = _hash_label(used)

    def _remember_rekey(self, spi, seq, frame):
        from scapy_gdoi.bounded import BoundedLRU
        remembered = self.rekeys.touch(spi)
        if remembered is None:
            remembered = self.rekeys[spi] = BoundedLRU(REKEYS_REMEMBERED_PER_KEK)
        if seq not in remembered:
            remembered[seq] = frame

    def _match(self, report, spi, seq, member):
        frame = self.rekeys.touch(spi, {}).get(seq)
        if frame is None:
            return None
        if self.acked.touch((spi, seq, member)):
            _add_error(report, "duplicate ACK from %s for SEQ %d" % (member, seq))
        self.acked[(spi, seq, member)] = True
        return frame

    def _ack(self, report, header, message):
        from scapy_gdoi import ack
        report["kek_spi"] = header.spi.hex()
        info = ack.parse_ack(message)
        report["seq"] = info.seq
        kek = self.keys.kek(info.spi)
        requested = self.requested_acks.touch(info.spi)
        if requested is None and kek is not None:
            requested = kek.ack_method
        verdict = _ack_verdict(info, kek, requested)
        report["ack"] = {"seq": info.seq, "id": info.member, "hash": verdict,
                         "rekey_frame": None, "reason": None}
        if verdict == ack.HASH_INVALID:
            report["error"] = report["ack"]["reason"] = _ack_failure(info, requested)
            return
        if requested is not None and _ack_method_or_none(requested) is None:
            report["ack"]["reason"] = (
                "the rekey requested KEK_ACK_REQUESTED %s, a method this analyser does "
                "not know: the HASH was checked with the method its length names"
                % (requested,))
        if verdict == ack.HASH_UNVERIFIED:
            report["ack"]["reason"] = self._no_kek_reason(info.spi)
        report["ack"]["rekey_frame"] = self._match(report, info.spi, info.seq, info.member)

    def _cisco_ack(self, report, header, message):
        from scapy_gdoi import ack, crypto, wire
        spi = header.spi
        report["kek_spi"] = spi.hex()
        kek = self.keys.kek(spi)
        # No HASH exists in a Cisco ACK: never "valid", at best "unverified" with the
        # reason (DECISIONS.md §2; structure after KEK decryption is the only check).
        report["ack"] = {"seq": None, "id": None, "hash": ack.HASH_UNVERIFIED,
                         "rekey_frame": None, "reason": None}
        if kek is None and header.encrypted:
            report["ack"]["reason"] = self._no_kek_reason(spi)
            report["error"] = "cannot decrypt: " + report["ack"]["reason"]
            return
        try:
            seq, id_type, id_data = ack.open_cisco_ack(message, kek)
        except (ack.AckFormatError, crypto.GDOICryptoError, wire.WireError) as exc:
            report["ack"]["hash"] = ack.HASH_INVALID
            report["ack"]["reason"] = str(exc)
            report["error"] = str(exc)
            return
        report["decrypted"] = True
        member = ack.member_id_text(id_type, id_data)
        report["seq"] = seq
        report["ack"].update(seq=seq, id=member, reason=ack.CISCO_ACK_UNVERIFIED_REASON)
        report["ack"]["rekey_frame"] = self._match(report, spi, seq, member)


def _ack_method_or_none(requested):
    from scapy_gdoi import crypto
    try:
        return None if requested is None else crypto.ack_method_value(requested)
    except crypto.GDOICryptoError:
        return None


def _ack_verdict(info, kek, requested):
    """The ACK HASH verdict under the requested method (unknown values: by length)."""
    from scapy_gdoi import ack
    return ack.check_ack(info, kek, _ack_method_or_none(requested))


def _ack_failure(info, requested):
    """Why an ACK HASH failed: the method differs from the rekey's request, or the
    HASH is wrong (RFC 8263: the HASH uses the method KEK_ACK_REQUESTED names)."""
    from scapy_gdoi import ack, crypto
    text = "ACK HASH does not verify with the KEK of SPI %s" % info.spi.hex()
    requested = _ack_method_or_none(requested)
    if requested is None:
        return text
    expected = hashlib.new(crypto.ACK_HASH_NAMES[requested]).digest_size
    if len(info.hash) == expected:
        return text
    used = ack.ACK_METHOD_BY_HASH_LENGTH.get(len(info.hash))
    used_text = ("ACK uses %s" % crypto.ack_method_label(used) if used is not None
                 else "ACK HASH is %d octets" % len(info.hash))
    return "%s but the rekey requested %s (KEK_ACK_REQUESTED %d, %d-octet HASH)" % (
        used_text, crypto.ack_method_label(requested), requested, expected)


def _add_warning(report, message):
    report["warning"] = message if not report["warning"] else (
        report["warning"] + "; " + message)


def _add_error(report, message):
    """Errors accumulate: a frame can be both cut short and a replay."""
    report["error"] = message if not report["error"] else report["error"] + "; " + message


def _sig_key_length_problem(kek, summary, keystore):
    """Why the verification key contradicts SIG_KEY_LENGTH, or None.

    facts §4.3 / RFC 6407 §5.3.1: SIG_KEY_LENGTH (bits) must equal the size of the key
    in SIG_ALGORITHM_KEY. The value comes from this message's SA KEK for the KEK's SPI,
    else from the last SA KEK seen for it.
    """
    from scapy_gdoi import crypto
    policy = next((p for p in summary.keks if p.spi == kek.spi), None)
    if policy is None:
        policy = keystore.policies.get(kek.spi)
    if policy is None or policy.sig_key_bits is None:
        return None
    try:
        actual = crypto.public_key_bits(kek.public_key)
    except crypto.GDOICryptoError:
        return None
    if actual == policy.sig_key_bits:
        return None
    return ("SIG_KEY_LENGTH %d does not match the %d-bit verification key of SPI %s "
            "(facts §4.3)" % (policy.sig_key_bits, actual, kek.spi.hex()))


def _hash_label(hash_alg):
    """"SHA1"-style name of a SIG_HASH_ALGORITHM number or hashlib name (None stays)."""
    if hash_alg is None:
        return None
    from scapy_gdoi import crypto
    name = crypto.sig_hash_name(hash_alg)
    number = next(n for n, v in crypto.SIG_HASH_NAMES.items() if v == name)
    return C.SIG_HASH_ALGORITHMS[number]


def _kek_report(policy):
    from scapy_gdoi.keys import kek_algorithm_name
    return {"spi": policy.spi.hex(), "algorithm": kek_algorithm_name(policy.algorithm),
            "key_bits": policy.key_bits, "ack_requested": _ack_name(policy.ack_requested),
            "sig_hash": C.SIG_HASH_ALGORITHMS.get(policy.sig_hash),
            "sig_algorithm": C.SIG_ALGORITHMS.get(policy.sig_algorithm)}


def _kek_context_report(kek):
    """The KEK that protects a message which carries no SA KEK of its own."""
    from scapy_gdoi import crypto
    sig_algorithm = None
    if kek.public_key is not None:
        try:
            sig_algorithm = C.SIG_ALGORITHMS.get(crypto.signature_algorithm_of(kek.public_key))
        except crypto.GDOICryptoError:
            pass
    return {"spi": kek.spi.hex(), "algorithm": kek.cipher.name, "key_bits": len(kek.key) * 8,
            "ack_requested": _ack_name(kek.ack_method),
            "sig_hash": _hash_label(kek.sig_hash),
            "sig_algorithm": sig_algorithm}


def _ack_name(value):
    return None if value is None else C.KEK_ACK_METHODS.get(value, str(value))


# -- driving a capture --------------------------------------------------------------------

def analyze_capture(path, keystore=None, notices=None):
    """Yield the report dict of every GDOI message in the capture at `path`.

    :param notices: a :class:`scapy_gdoi.capture.CaptureNotices` that hears about what
        the capture holds but cannot be read (unsupported link types, ethertypes).
    :raises scapy_gdoi.capture.CaptureError: the file cannot be read at all.
    """
    from scapy_gdoi.capture import iter_datagrams
    analyzer = Analyzer(keystore)
    for datagram in iter_datagrams(path, notices):
        yield analyzer.analyze(datagram)
    analyze_capture.last_counts = analyzer.counts


def format_report(report):
    """One readable line (plus an error line) for a report dict."""
    parts = ["#%-6s" % report["frame"],
             "%s -> %s" % (report["src"] or "?", report["dst"] or "?"),
             report["kind"]]
    if report["exchange"]:
        parts.append(report["exchange"])
    if report["kek_spi"]:
        parts.append("KEK " + report["kek_spi"])
    if report["seq"] is not None:
        seq = "seq %d" % report["seq"]
        if report["seq_status"] not in (None, SEQ_FIRST, SEQ_OK):
            seq += " (%s)" % report["seq_status"]
        parts.append(seq)
    if report["encrypted"]:
        parts.append("decrypted" if report["decrypted"] else "encrypted")
    elif report["encrypted"] is not None:
        parts.append("plaintext")
    if report["signature"]:
        parts.append("sig " + report["signature"] + (
            " (%s)" % report["sig_hash"] if report["sig_hash"] else ""))
    if report["ack"]:
        a = report["ack"]
        parts.append("%shash %s -> %s" % (
            "from %s " % a["id"] if a["id"] is not None else "", a["hash"],
            "rekey #%s" % a["rekey_frame"] if a["rekey_frame"] else "no matching rekey"))
    lines = ["  ".join(str(p) for p in parts)]
    details = []
    if report["kek"]:
        details.append(_kek_text(report["kek"]))
    if report["gap"]:
        details.append("GAP " + " ".join("%s=%s" % kv for kv in report["gap"].items()
                                         if kv[1] is not None))
    if report["teks"]:
        details.append("TEKs " + ", ".join("/".join(
            "?" if t[name] is None else str(t[name]) for name in ("spi", "protocol",
                                                                   "transform"))
            for t in report["teks"]))
    if report["deletes"]:
        details.append("DELETE " + ", ".join(",".join(d["spis"]) for d in report["deletes"]))
    if report["learned_keks"]:
        details.append("learned KEK " + ", ".join(report["learned_keks"]))
    if report["ack"] and report["ack"].get("reason") and not report["error"]:
        details.append("ACK %s: %s" % (report["ack"]["hash"], report["ack"]["reason"]))
    lines.extend("         " + d for d in details)
    if report["warning"]:
        lines.append("         warning: " + report["warning"])
    if report["error"]:
        lines.append("         error: " + report["error"])
    return "\n".join(lines)


def _kek_text(kek):
    """"KEK <spi> aes-128 ack=REKEY_ACK_KEK_SHA256", leaving out what is unknown (text
    output shows no Python None)."""
    cipher = kek["algorithm"] or "unknown-cipher"
    if kek["key_bits"] is not None:
        cipher += "-%s" % kek["key_bits"]
    text = "KEK %s %s" % (kek["spi"], cipher)
    if kek["ack_requested"] is not None:
        text += " ack=%s" % kek["ack_requested"]
    return text


#: Count labels whose singular differs from "<n> <label>" (the error counter).
_SINGULAR = {"errors": "error", "warnings": "warning"}


def _count_text(value, label):
    return "%d %s" % (value, _SINGULAR.get(label, label) if value == 1 else label)


def format_counts(counts):
    """The closing summary of a text report."""
    order = [KIND_PHASE1, KIND_PULL, KIND_REKEY, KIND_ACK, KIND_CISCO_ACK, KIND_OTHER]
    line = ", ".join(_count_text(counts[k], k) for k in order if counts[k])
    extra = ", ".join(_count_text(v, k) for k, v in sorted(counts.items())
                      if k not in order and v)
    return "Summary: " + (line or "no GDOI messages") + ("; " + extra if extra else "")


def _json_value(value):
    # Attribute data of unexpected shape arrives as bytes: show it as hex, never crash.
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    raise TypeError("not JSON serialisable: %r" % (value,))


#: The capture argument that means "read standard input".
STDIN_CAPTURE = "-"


@contextlib.contextmanager
def _capture_path(capture):
    """(path, name for messages) of the capture; "-" spools standard input to a
    temporary file first (the reader needs to seek to tell a cut record from the end,
    and a pipe cannot seek). The copy is streamed: memory stays constant."""
    if capture != STDIN_CAPTURE:
        yield capture, capture
        return
    with tempfile.TemporaryDirectory(prefix="gdoi-analyze-") as directory:
        path = os.path.join(directory, "stdin.pcap")
        with open(path, "wb") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
        yield path, "<stdin>"


def _run(args):
    from scapy_gdoi.capture import CaptureError, CaptureNotices
    from scapy_gdoi.crypto import CryptoUnavailable
    from scapy_gdoi.keys import KeyStore, KeysFileError
    try:
        keystore = KeyStore.from_file(args.keys) if args.keys else KeyStore()
    except (KeysFileError, CryptoUnavailable) as exc:
        print("gdoi analyze: %s" % exc, file=sys.stderr)
        return 2
    out = sys.stdout

    def warn(text):
        print("gdoi analyze: warning: %s" % text, file=sys.stderr)

    notices = CaptureNotices(on_notice=warn)
    with _capture_path(args.capture) as (path, name):
        try:
            for report in analyze_capture(path, keystore, notices):
                if args.json:
                    out.write(json.dumps(report, default=_json_value) + "\n")
                else:
                    out.write(format_report(report) + "\n")
        except CaptureError as exc:
            print("gdoi analyze: %s" % str(exc).replace(path, name), file=sys.stderr)
            return 2
    if not args.json:
        out.write(format_counts(analyze_capture.last_counts) + "\n")
        if notices.messages:
            out.write("Warnings: " + "; ".join(notices.messages) + "\n")
    return 0


def register(commands, show_commands):
    """Add ``gdoi analyze`` to the CLI (see scapy_gdoi.cli)."""
    parser = commands.add_parser(
        "analyze", help="decrypt, verify and explain the GDOI traffic in a capture",
        description="Read a pcap/pcapng capture (streamed, any size), find GDOI on UDP "
                    "848, decrypt and verify what the keys allow, track rekey sequence "
                    "numbers and match ACKs to rekeys.")
    parser.add_argument("capture", help='pcap or pcapng file; "-" reads it from standard '
                                        'input (e.g. tcpdump -w - ... | gdoi analyze -; '
                                        'spooled to a temporary file first)')
    parser.add_argument("--keys", metavar="KEYS.json",
                        help='keys file: {"keks": [{"spi", "algorithm", "key", "iv"}], '
                             '"signing_keys": [{"spi", "public_key_pem"}]} (hex strings)')
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per message (JSON Lines)")
    parser.set_defaults(func=_run)
