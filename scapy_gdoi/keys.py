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
               "sig_hash": "sha1 (optional)", "ack": "sha256 (optional)"}],
     "signing_keys": [{"spi": "...", "public_key_pem": "-----BEGIN PUBLIC KEY-----..."}]}
"""
import json

from scapy_gdoi import crypto
from scapy_gdoi.rekey import KEKContext


class KeysFileError(ValueError):
    """The keys file is unreadable or malformed (the message names the entry)."""


#: Distinct encoded public keys kept parsed.
PARSED_KEY_CACHE_SIZE = 64

_ACK_BY_NAME = {name: value for value, name in crypto.ACK_HASH_NAMES.items()}


class KeyStore:
    """KEK contexts and signature keys by 16-octet KEK SPI."""

    def __init__(self):
        self.keks = {}  # spi -> KEKContext
        self.signing_keys = {}  # spi -> public key (for SPIs whose KEK is unknown yet)
        self.policies = {}  # spi -> summary.KEKPolicyInfo seen in an SA KEK
        self._parsed_keys = {}  # encoded public key -> key object

    # -- lookup ----------------------------------------------------------------------

    def kek(self, spi):
        """The KEKContext for `spi`, or None."""
        return self.keks.get(bytes(spi))

    def add_kek(self, context):
        """Add (or replace) a KEK; a signing key already known for the SPI is attached."""
        if context.public_key is None and context.spi in self.signing_keys:
            context.public_key = self.signing_keys[context.spi]
        self.keks[context.spi] = context
        return context

    def add_signing_key(self, spi, public_key):
        """Attach a verification key (key object, DER or PEM bytes) to a KEK SPI."""
        spi = bytes(spi)
        if not hasattr(public_key, "public_numbers"):
            encoded = bytes(public_key)
            # Every rekey repeats SIG_ALGORITHM_KEY: parse each distinct key once.
            if encoded not in self._parsed_keys:
                if len(self._parsed_keys) >= PARSED_KEY_CACHE_SIZE:
                    self._parsed_keys.clear()  # bounded: constant memory on any capture
                self._parsed_keys[encoded] = crypto.load_public_key(encoded)
            public_key = self._parsed_keys[encoded]
        self.signing_keys[spi] = public_key
        if spi in self.keks:
            self.keks[spi].public_key = public_key

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
        """Build from the parsed keys-file JSON."""
        if not isinstance(data, dict):
            raise KeysFileError("keys file: the top level must be an object")
        store = cls()
        for index, entry in enumerate(data.get("signing_keys", [])):
            where = "signing_keys[%d]" % index
            spi = _hex(entry, "spi", where, 16)
            pem = entry.get("public_key_pem") if isinstance(entry, dict) else None
            if not isinstance(pem, str):
                raise KeysFileError("%s: public_key_pem (a PEM string) is required" % where)
            try:
                store.add_signing_key(spi, pem.encode())
            except crypto.GDOICryptoError as exc:
                raise KeysFileError("%s: %s" % (where, exc))
        for index, entry in enumerate(data.get("keks", [])):
            store.add_kek(_kek_from_entry(entry, "keks[%d]" % index))
        return store

    # -- learning --------------------------------------------------------------------

    def learn(self, summary, via_spi=None):
        """Learn KEK policies and keys from a message summary; returns learned SPIs.

        `via_spi` is the KEK that protected the message (a rekey): a new KEK whose key
        packet carries no SIG_ALGORITHM_KEY keeps that KEK's signing key and hash, since
        the group's signer does not change with the KEK (RFC 6407 §5.6.2).
        """
        learned = []
        for policy in summary.keks:
            self.policies[policy.spi] = policy
            if policy.spi in self.keks:
                _apply_policy(self.keks[policy.spi], policy)
        via = self.kek(via_spi) if via_spi is not None else None
        for key_info in summary.kek_keys:
            context = self._context_from_key_packet(key_info, via)
            if context is not None:
                self.add_kek(context)
                learned.append(context.spi)
        return learned

    def _context_from_key_packet(self, key_info, via):
        spi = key_info.spi
        policy = self.policies.get(spi)
        known = self.keks.get(spi)
        algorithm = policy.algorithm if policy and policy.algorithm else (
            known.cipher.alg_id if known else None)
        if key_info.signature_key:
            self.add_signing_key(spi, key_info.signature_key)
        if algorithm is None or not key_info.algorithm_key:
            return None  # policy (algorithm) not seen: cannot tell IV from key
        key_len = policy.key_bits // 8 if policy and policy.key_bits else None
        inherited = via or known
        context = KEKContext.from_algorithm_key(
            spi, algorithm, key_info.algorithm_key, key_len,
            sig_hash=inherited.sig_hash if inherited else None,
            public_key=self.signing_keys.get(spi) or (inherited.public_key if inherited
                                                      else None),
            ack_method=inherited.ack_method if inherited else None)
        if policy is not None:
            _apply_policy(context, policy)
        return context


def _apply_policy(context, policy):
    if policy.sig_hash:
        context.sig_hash = policy.sig_hash
    context.ack_method = policy.ack_requested


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


def _kek_from_entry(entry, where):
    spi = _hex(entry, "spi", where, 16)
    key, iv = _hex(entry, "key", where), _hex(entry, "iv", where)
    algorithm = entry.get("algorithm")
    if not isinstance(algorithm, str):
        raise KeysFileError("%s: algorithm (aes, 3des or des) is required" % where)
    sig_hash = entry.get("sig_hash")
    ack = entry.get("ack")
    try:
        if sig_hash is not None:
            sig_hash = crypto.sig_hash_name(sig_hash)
        if ack is not None and ack not in _ACK_BY_NAME:
            raise crypto.GDOICryptoError("ack must be one of %s" % ", ".join(_ACK_BY_NAME))
        return KEKContext(spi, algorithm, key, iv, sig_hash=sig_hash,
                          ack_method=_ACK_BY_NAME.get(ack))
    except crypto.GDOICryptoError as exc:
        raise KeysFileError("%s: %s" % (where, exc))


def kek_algorithm_name(algorithm):
    """"aes"/"3des"/"des" for a KEK_ALGORITHM number, else the number as text."""
    cipher = crypto.KEK_CIPHERS.get(algorithm)
    return cipher.name if cipher else (None if algorithm is None else str(algorithm))


__all__ = ["KeyStore", "KeysFileError", "kek_algorithm_name"]
