# SPDX-License-Identifier: GPL-2.0-only
"""Key store for capture analysis: KEKs and signing keys by KEK SPI.

Keys come from a keys file (the `gdoi analyze --keys` format) and from the plaintext
of messages the analyser could read (learning):

* an SA KEK payload (RFC 6407 §5.3) gives the policy of a KEK SPI: algorithm, key
  length, signature hash, KEK_ACK_REQUESTED;
* a KD KEK key packet (RFC 6407 §5.6.2) gives KEK_ALGORITHM_KEY (IV ‖ key) and
  SIG_ALGORITHM_KEY for that SPI.

The two may arrive in different messages (GROUPKEY-PULL message 2 holds the SA, message
4 the KD; a rekey may carry both), so policies wait in the store until their keys come.

Keys file (JSON, hex strings)::

    {"keks": [{"spi": "...", "algorithm": "aes|3des|des", "key": "...", "iv": "...",
               "sig_hash": "sha1 (optional)",
               "ack": "sha256 | REKEY_ACK_KEK_SHA256 | 1 (optional)"}],
     "signing_keys": [{"spi": "...", "public_key_pem": "-----BEGIN PUBLIC KEY-----..."}]}

At least one of the two lists must be present; any other name is an error.
"""
import json

from scapy_gdoi import crypto
from scapy_gdoi.bounded import BoundedLRU
from scapy_gdoi.rekey import KEKContext
from scapy_gdoi.wire import KEK_SPI_LEN


class KeysFileError(ValueError):
    """The keys file is unreadable or malformed (the message names the entry)."""


#: Distinct encoded public keys kept parsed.
PARSED_KEY_CACHE_SIZE = 64

#: The names a keys file may use, at the top level and in each entry.
TOP_LEVEL_NAMES = ("keks", "signing_keys")
KEK_ENTRY_NAMES = ("spi", "algorithm", "key", "iv", "sig_hash", "ack")
SIGNING_KEY_ENTRY_NAMES = ("spi", "public_key_pem")


#: KEKs, signing keys and SA KEK policies learnt from traffic, kept per kind (least
#: recently used dropped first). A group changes its KEK at most every few hours and a
#: capture rarely spans more than a handful of groups, so 1024 is far above real use;
#: the cap only stops a capture full of invented SPIs from growing the store.
MAX_LEARNED_KEKS = 1024

#: Where a key came from: the keys file (trusted, never replaced) or the traffic.
SOURCE_FILE, SOURCE_LEARNED = "keys file", "learned"


class KeyStore:
    """KEK contexts and signature keys by 16-octet KEK SPI.

    Keys given by the user (keys file, or :meth:`add_kek` with ``pinned=True``) are
    trusted and never replaced by anything learnt from traffic; learnt keys are
    bounded (:data:`MAX_LEARNED_KEKS`).
    """

    def __init__(self):
        self.keks = BoundedLRU(MAX_LEARNED_KEKS)  # spi -> learnt KEKContext
        self.signing_keys = BoundedLRU(MAX_LEARNED_KEKS)  # spi -> learnt public key
        self.policies = BoundedLRU(MAX_LEARNED_KEKS)  # spi -> summary.KEKPolicyInfo
        self.pinned_keks = {}  # spi -> KEKContext from the keys file (never evicted)
        self.pinned_signing_keys = {}  # spi -> public key from the keys file
        self._parsed_keys = {}  # encoded public key -> key object

    # -- lookup ----------------------------------------------------------------------

    def kek(self, spi):
        """The KEKContext for `spi`, or None (keys-file KEKs first)."""
        spi = bytes(spi)
        pinned = self.pinned_keks.get(spi)
        return pinned if pinned is not None else self.keks.touch(spi)

    def signing_key(self, spi):
        """The verification key known for `spi`, or None (keys file first)."""
        spi = bytes(spi)
        pinned = self.pinned_signing_keys.get(spi)
        return pinned if pinned is not None else self.signing_keys.touch(spi)

    def source(self, spi):
        """SOURCE_FILE, SOURCE_LEARNED or None: where the KEK of `spi` came from."""
        spi = bytes(spi)
        if spi in self.pinned_keks:
            return SOURCE_FILE
        return SOURCE_LEARNED if spi in self.keks else None

    def add_kek(self, context, pinned=True):
        """Add a KEK; a signing key already known for the SPI is attached.

        `pinned` (default: a key the user gives, as from the keys file): trusted, kept
        for good. ``pinned=False`` is for keys learnt from traffic; a learnt KEK never
        replaces a pinned one: the call is ignored and the pinned context returned.
        """
        if context.public_key is None:
            context.public_key = self.signing_key(context.spi)
        if pinned:
            self.pinned_keks[context.spi] = context
            self.keks.pop(context.spi, None)
            return context
        if context.spi in self.pinned_keks:
            return self.pinned_keks[context.spi]
        self.keks[context.spi] = context
        return context

    def add_signing_key(self, spi, public_key, pinned=True):
        """Attach a verification key (key object, DER or PEM bytes) to a KEK SPI.

        `pinned` as for :meth:`add_kek`: a learnt key (``pinned=False``) is ignored
        (returns False) for an SPI whose signing key or KEK the user gave.
        """
        spi = bytes(spi)
        if not pinned and (spi in self.pinned_signing_keys or spi in self.pinned_keks):
            # What the user gave stays as given: a keys-file KEK without a signing key
            # does not get one from traffic (it would decide what "valid" means).
            return False
        if not hasattr(public_key, "public_numbers"):
            encoded = bytes(public_key)
            # Every rekey repeats SIG_ALGORITHM_KEY: parse each distinct key once.
            if encoded not in self._parsed_keys:
                if len(self._parsed_keys) >= PARSED_KEY_CACHE_SIZE:
                    self._parsed_keys.clear()  # bounded: constant memory on any capture
                self._parsed_keys[encoded] = crypto.load_public_key(encoded)
            public_key = self._parsed_keys[encoded]
        if pinned:
            self.pinned_signing_keys[spi] = public_key
        else:
            self.signing_keys[spi] = public_key
        context = self.kek(spi)
        if context is not None:
            context.public_key = public_key
        return True

    # -- keys file -------------------------------------------------------------------

    @classmethod
    def from_file(cls, path):
        """Load a keys file; raises KeysFileError with the reason."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise KeysFileError("cannot read keys file %s: %s" % (path, exc.strerror))
        except ValueError as exc:
            raise KeysFileError("keys file %s is not JSON: %s" % (path, exc))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data):
        """Build from the parsed keys-file JSON (every key pinned: never replaced)."""
        if not isinstance(data, dict):
            raise KeysFileError("keys file: the top level must be an object")
        _check_names(data, TOP_LEVEL_NAMES, "keys file")
        if not any(name in data for name in TOP_LEVEL_NAMES):
            raise KeysFileError('keys file: it has neither "keks" nor "signing_keys", so '
                                'it gives no key')
        for name in TOP_LEVEL_NAMES:
            if not isinstance(data.get(name, []), list):
                raise KeysFileError("keys file: %s must be a list" % name)
        store = cls()
        for index, entry in enumerate(data.get("signing_keys", [])):
            where = "signing_keys[%d]" % index
            spi = _hex(entry, "spi", where, KEK_SPI_LEN)
            _check_names(entry, SIGNING_KEY_ENTRY_NAMES, where)
            pem = entry.get("public_key_pem") if isinstance(entry, dict) else None
            if not isinstance(pem, str):
                raise KeysFileError("%s: public_key_pem (a PEM string) is required" % where)
            try:
                store.add_signing_key(spi, pem.encode(), pinned=True)
            except crypto.GDOICryptoError as exc:
                raise KeysFileError("%s: %s" % (where, exc))
        for index, entry in enumerate(data.get("keks", [])):
            store.add_kek(_kek_from_entry(entry, "keks[%d]" % index), pinned=True)
        return store

    # -- learning --------------------------------------------------------------------

    def learn(self, summary, via_spi=None, only_new=False):
        """Learn KEK policies and keys from a message summary; returns learned SPIs.

        Call it only for messages whose origin is proven (a rekey with a valid
        signature), or with ``only_new=True`` for unauthenticated plaintext (the
        *-plaintext-DERIVED* PULL captures): then only SPIs with no key yet are filled
        in, nothing known is replaced. Keys-file keys are never replaced either way.

        `via_spi` is the KEK that protected the message (a rekey): a new KEK whose key
        packet carries no SIG_ALGORITHM_KEY keeps that KEK's signing key and hash, since
        the group's signer does not change with the KEK (RFC 6407 §5.6.2).
        """
        learned = []
        for policy in summary.keks:
            if only_new and (policy.spi in self.policies or self.kek(policy.spi)):
                continue
            self.policies[policy.spi] = policy
            known = self.kek(policy.spi)
            if known is not None:
                _apply_policy(known, policy, fill_only=policy.spi in self.pinned_keks)
        via = self.kek(via_spi) if via_spi is not None else None
        for key_info in summary.kek_keys:
            if key_info.spi in self.pinned_keks or (only_new and self.kek(key_info.spi)):
                continue
            context = self._context_from_key_packet(key_info, via, only_new)
            if context is not None:
                self.add_kek(context, pinned=False)
                learned.append(context.spi)
        return learned

    def _context_from_key_packet(self, key_info, via, only_new):
        spi = key_info.spi
        policy = self.policies.touch(spi)
        known = self.kek(spi)
        # Attribute values keep their wire form (an int for TV, bytes for TLV, as the
        # layers give them): only a numeric KEK_ALGORITHM / KEK_KEY_LENGTH and octet
        # strings for the keys mean anything here.
        algorithm = policy.algorithm if policy and isinstance(policy.algorithm, int) and \
            policy.algorithm else (known.cipher.alg_id if known else None)
        if isinstance(key_info.signature_key, bytes) and key_info.signature_key and not (
                only_new and (self.signing_key(spi) or known)):
            self.add_signing_key(spi, key_info.signature_key, pinned=False)
        if algorithm is None or not isinstance(key_info.algorithm_key, bytes) or \
                not key_info.algorithm_key:
            return None  # policy (algorithm) not seen: cannot tell IV from key
        key_len = (policy.key_bits // 8 if policy and isinstance(policy.key_bits, int)
                   and policy.key_bits else None)
        inherited = via or known
        context = KEKContext.from_algorithm_key(
            spi, algorithm, key_info.algorithm_key, key_len,
            sig_hash=inherited.sig_hash if inherited else None,
            public_key=self.signing_key(spi) or (inherited.public_key if inherited
                                                 else None),
            ack_method=inherited.ack_method if inherited else None)
        if policy is not None:
            _apply_policy(context, policy)
        return context


def _apply_policy(context, policy, fill_only=False):
    """Copy an SA KEK's hash and ACK method onto a context; `fill_only` (keys-file KEKs)
    sets only what the keys file left out."""
    if policy.sig_hash and not (fill_only and context.sig_hash is not None):
        context.sig_hash = policy.sig_hash
    if not (fill_only and context.ack_method is not None):
        context.ack_method = _known_ack_method(policy.ack_requested)


def _known_ack_method(value):
    """A KEK_ACK_REQUESTED value from the wire if this library knows it, else None:
    an unknown method (or malformed attribute) cannot key an ACK HASH, so the ACK is
    then judged by its HASH length (the analyser says why)."""
    try:
        return None if value is None else crypto.ack_method_value(value)
    except crypto.GDOICryptoError:
        return None


def _hex(entry, name, where, size=None):
    if not isinstance(entry, dict) or not isinstance(entry.get(name), str):
        raise KeysFileError("%s: %s (a hex string) is required" % (where, name))
    try:
        value = bytes.fromhex(entry[name])
    except ValueError:
        raise KeysFileError("%s: %s is not hex" % (where, name))
    if size is not None and len(value) != size:
        raise KeysFileError("%s: %s must be %d octets, got %d" % (where, name, size,
                                                                   len(value)))
    return value


def _check_names(mapping, known, where):
    """Refuse names the format does not define: a typo ("kek" for "keks", "ivv") would
    otherwise drop a key silently and make every later frame look undecryptable."""
    unknown = [name for name in mapping if name not in known]
    if unknown:
        raise KeysFileError("%s: unknown key%s %s (known: %s)" % (
            where, "s" if len(unknown) > 1 else "", ", ".join(map(repr, unknown)),
            ", ".join(known)))


def _kek_from_entry(entry, where):
    spi = _hex(entry, "spi", where, KEK_SPI_LEN)
    _check_names(entry, KEK_ENTRY_NAMES, where)
    key, iv = _hex(entry, "key", where), _hex(entry, "iv", where)
    algorithm = entry.get("algorithm")
    if not isinstance(algorithm, str):
        raise KeysFileError("%s: algorithm (aes, 3des or des) is required" % where)
    sig_hash = entry.get("sig_hash")
    ack = entry.get("ack")
    try:
        if sig_hash is not None:
            sig_hash = crypto.sig_hash_name(sig_hash)
        # Same spellings as every API (crypto.ack_method_value): 1, "sha256",
        # "REKEY_ACK_KEK_SHA256"...
        return KEKContext(spi, algorithm, key, iv, sig_hash=sig_hash,
                          ack_method=None if ack is None else crypto.ack_method_value(ack))
    except crypto.GDOICryptoError as exc:
        raise KeysFileError("%s: %s" % (where, exc))


def kek_algorithm_name(algorithm):
    """"aes"/"3des"/"des" for a KEK_ALGORITHM number, else the number as text."""
    cipher = crypto.KEK_CIPHERS.get(algorithm)
    return cipher.name if cipher else (None if algorithm is None else str(algorithm))


__all__ = ["KeyStore", "KeysFileError", "kek_algorithm_name", "MAX_LEARNED_KEKS"]
