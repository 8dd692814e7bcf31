# SPDX-License-Identifier: GPL-2.0-only
"""Bytes-level GDOI cryptography: KEK ciphers, rekey signatures, the RFC 8263 ACK hash.

Nothing here knows about Scapy layers: every function takes and returns bytes (or
`cryptography` key objects), so the same code serves the layers, the forger and the
capture analyser.

* KEK ciphers (RFC 6407 §5.3.1 KEK_ALGORITHM, gdoi-protocol-facts.md §4.4): DES, 3DES
  and AES in CBC mode, zero padding up to the block size with no pad-length octet
  (ISAKMP style, gdoid `gdoi_rekey_message_encrypt`).
* Rekey signatures (RFC 6407 §4.7/§5.3.1, facts §4.3): RSA PKCS#1 v1.5 and ECDSA
  P-256/384/521 over ``"rekey" ‖ HDR ‖ payloads before SIG``.
* The RFC 8263 ACK hash: ONE function, :func:`ack_hash` (DECISIONS.md §2).

ECDSA signatures on the wire (SIG payload data) are raw ``r ‖ s``, each integer
big-endian and left-padded to the octet size of the curve order: 64, 96 and 132
octets for P-256, P-384 and P-521 (the fixed-width form IKEv2 uses, RFC 4754 §7).
:func:`sign` always writes that form; :func:`verify` also accepts a DER
ECDSA-Sig-Value. RSA signatures are PKCS#1 v1.5, modulus-sized.

The `cryptography` package is imported lazily and guarded: dissection and the ACK
hash (stdlib :mod:`hmac`) work without it; only cipher and signature calls raise
:class:`CryptoUnavailable`.
"""
import hashlib
import hmac
import struct

from scapy_gdoi import _consts as C
from scapy_gdoi.wire import KEK_SPI_LEN

try:  # guarded: scapy-gdoi dissects packets without `cryptography` installed
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature, encode_dss_signature)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    try:  # cryptography >= 43 moved TripleDES to the "decrepit" namespace
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # pragma: no cover - older cryptography
        TripleDES = algorithms.TripleDES
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - exercised only without the package
    HAVE_CRYPTOGRAPHY = False


class CryptoUnavailable(RuntimeError):
    """The `cryptography` package is needed for this operation and is missing."""


class GDOICryptoError(ValueError):
    """Bad key material or a ciphertext that cannot be processed (clear message)."""


def _need_cryptography():
    if not HAVE_CRYPTOGRAPHY:
        raise CryptoUnavailable(
            "this operation needs the 'cryptography' package (pip install cryptography)")


# -- KEK ciphers --------------------------------------------------------------------

class KEKCipher:
    """One KEK_ALGORITHM: its name, block size and allowed key sizes (octets)."""

    def __init__(self, alg_id, name, block_size, key_sizes):
        self.alg_id = alg_id
        self.name = name
        self.block_size = block_size
        self.key_sizes = key_sizes

    def __repr__(self):
        return "<KEKCipher %s>" % self.name

    def _algorithm(self, key):
        _need_cryptography()
        if len(key) not in self.key_sizes:
            raise GDOICryptoError("%s key must be %s octets, got %d" % (
                self.name, " or ".join(map(str, self.key_sizes)), len(key)))
        if self.alg_id == C.KEK_ALG_AES:
            return algorithms.AES(key)
        if self.alg_id == C.KEK_ALG_DES:
            # Single DES is 3DES with K1 = K2 = K3 (EDE collapses to one DES pass);
            # cryptography dropped a native DES and deprecates 8-octet TripleDES keys.
            return TripleDES(key * 3)
        return TripleDES(key)

    def _cipher(self, key, iv):
        algorithm = self._algorithm(key)
        if len(iv) != self.block_size:
            raise GDOICryptoError("%s IV must be %d octets, got %d" % (
                self.name, self.block_size, len(iv)))
        return Cipher(algorithm, modes.CBC(iv))

    def pad(self, data):
        """Zero-pad to a multiple of the block size (no pad-length octet, facts §4.4)."""
        return data + b"\0" * (-len(data) % self.block_size)

    def encrypt(self, key, iv, plaintext):
        """CBC-encrypt `plaintext` after zero padding; returns the padded ciphertext."""
        encryptor = self._cipher(key, iv).encryptor()
        return encryptor.update(self.pad(plaintext)) + encryptor.finalize()

    def decrypt(self, key, iv, ciphertext):
        """CBC-decrypt; the zero padding stays (the payload chain says where data ends)."""
        if len(ciphertext) % self.block_size:
            raise GDOICryptoError(
                "cannot decrypt: %d octets of ciphertext is not a multiple of the %s "
                "block size (%d)" % (len(ciphertext), self.name, self.block_size))
        decryptor = self._cipher(key, iv).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()

    def split_algorithm_key(self, data, key_len=None):
        """Split a KEK_ALGORITHM_KEY attribute into (iv, key).

        The attribute is IV ‖ key (gdoid `decode_kd_kek_attribute`, DigiCert), with an IV
        of one block. `key_len` (octets, from KEK_KEY_LENGTH) checks the split.
        """
        iv, key = data[:self.block_size], data[self.block_size:]
        if key_len is not None and len(key) != key_len:
            raise GDOICryptoError("KEK_ALGORITHM_KEY holds a %d-octet key, KEK_KEY_LENGTH "
                                  "says %d" % (len(key), key_len))
        if len(key) not in self.key_sizes:
            raise GDOICryptoError("KEK_ALGORITHM_KEY for %s must be IV (%d) + key (%s) "
                                  "octets, got %d" % (
                                      self.name, self.block_size,
                                      " or ".join(map(str, self.key_sizes)), len(data)))
        return iv, key


#: KEK cipher registry, by KEK_ALGORITHM value (RFC 6407 §5.3.1); sizes from _consts.
KEK_CIPHERS = {
    number: KEKCipher(number, name, C.KEK_CIPHER_BLOCK_SIZES[number],
                      C.KEK_CIPHER_KEY_SIZES[number])
    for number, name in ((C.KEK_ALG_DES, "des"), (C.KEK_ALG_3DES, "3des"),
                         (C.KEK_ALG_AES, "aes"))
}
#: The same ciphers by the names the keys file uses ("aes", "3des", "des").
KEK_CIPHERS_BY_NAME = {c.name: c for c in KEK_CIPHERS.values()}


def kek_cipher(algorithm):
    """The :class:`KEKCipher` for a KEK_ALGORITHM number or a name ("aes", "3des", "des")."""
    if isinstance(algorithm, KEKCipher):
        return algorithm
    if isinstance(algorithm, str):
        cipher = KEK_CIPHERS_BY_NAME.get(algorithm.lower())
    else:
        cipher = KEK_CIPHERS.get(algorithm)
    if cipher is None:
        raise GDOICryptoError("unsupported KEK algorithm %r (known: %s)" % (
            algorithm, ", ".join(sorted(KEK_CIPHERS_BY_NAME))))
    return cipher


# -- Hashes ---------------------------------------------------------------------------

#: SIG_HASH_ALGORITHM value -> hashlib name (RFC 6407 §5.3.1).
SIG_HASH_NAMES = {C.SIG_HASH_MD5: "md5", C.SIG_HASH_SHA1: "sha1",
                  C.SIG_HASH_SHA256: "sha256", C.SIG_HASH_SHA384: "sha384",
                  C.SIG_HASH_SHA512: "sha512"}

#: KEK_ACK_REQUESTED value -> the hash H of the ACK method (DECISIONS.md §2).
ACK_HASH_NAMES = {C.KEK_ACK_SHA256: "sha256", C.KEK_ACK_SHA384: "sha384",
                  C.KEK_ACK_SHA512: "sha512"}

#: IOS spelling prefix of the ACK methods (C.KEK_ACK_METHODS: "REKEY_ACK_KEK_SHA256").
_IOS_ACK_PREFIX = "rekeyackkek"


def ack_method_value(method):
    """The KEK_ACK_REQUESTED value (1, 2, 3) of an ACK method given in any accepted form.

    The one place that normalises ACK method names, so every API and the keys file
    accept the same set: the KEK_ACK_REQUESTED numbers 1/2/3 (RFC 8263, DECISIONS.md
    §2), the IOS names "REKEY_ACK_KEK_SHA256/384/512" (``C.KEK_ACK_METHODS``) and hash
    names in any case, with or without a dash ("sha256", "SHA-256").

    :raises GDOICryptoError: (a ValueError) anything else, listing what is accepted.
    """
    if isinstance(method, int) and not isinstance(method, bool):
        if method in ACK_HASH_NAMES:
            return method
    elif isinstance(method, str):
        folded = method.strip().lower().replace("-", "").replace("_", "")
        if folded.startswith(_IOS_ACK_PREFIX):
            folded = folded[len(_IOS_ACK_PREFIX):]
        for value, name in ACK_HASH_NAMES.items():
            if folded == name:
                return value
    raise GDOICryptoError(
        "unknown ACK method %r: use a KEK_ACK_REQUESTED value (%s), an IOS name (%s) or "
        "a hash name (%s)" % (method, ", ".join(map(str, ACK_HASH_NAMES)),
                              ", ".join(C.KEK_ACK_METHODS.values()),
                              ", ".join(ACK_HASH_NAMES.values())))


def ack_method_label(method):
    """"SHA-256" etc. for a KEK_ACK_REQUESTED value (human text for messages)."""
    name = ACK_HASH_NAMES.get(method)
    return "SHA-%s" % name[3:] if name else str(method)


def sig_hash_name(hash_alg):
    """hashlib name of a SIG_HASH_ALGORITHM number (or a name, passed through)."""
    if isinstance(hash_alg, str):
        name = hash_alg.lower().replace("-", "")
        if name in SIG_HASH_NAMES.values():
            return name
    elif hash_alg in SIG_HASH_NAMES:
        return SIG_HASH_NAMES[hash_alg]
    raise GDOICryptoError("unsupported SIG_HASH_ALGORITHM %r" % (hash_alg,))


def _crypto_hash(name):
    _need_cryptography()
    return {"md5": hashes.MD5, "sha1": hashes.SHA1, "sha256": hashes.SHA256,
            "sha384": hashes.SHA384, "sha512": hashes.SHA512}[name]()


# -- RFC 8263 ACK hash (the ONE place that knows the recipe) --------------------------

def ack_hash(kek_key, kek_spi, hash_name, seq_bytes, id_bytes):
    """HASH of an RFC 8263 GROUPKEY-PUSH ACK.

    Project decision, see DECISIONS.md §2 (RFC 8263 text unavailable; recipe after the
    IEC 62351-9 summary, facts §5.2)::

        K_ack = HMAC-H(K_kek, "GROUPKEY-PUSH ACK" ‖ KEK SPI ‖ L)
        HASH  = HMAC-H(K_ack, SEQ ‖ ID)

    `kek_key` is the KEK cipher key (KEK_ALGORITHM_KEY without its IV), `kek_spi` the
    16-octet KEK SPI, `hash_name` "sha256"/"sha384"/"sha512" or a KEK_ACK_REQUESTED
    value, `seq_bytes`/`id_bytes` the complete SEQ and ID payloads as sent (generic
    headers included). L is the block size of H in bits, 4 octets big-endian.
    """
    hash_name = ACK_HASH_NAMES[ack_method_value(hash_name)]
    if len(kek_spi) != KEK_SPI_LEN:
        raise GDOICryptoError("the KEK SPI is %d octets, got %d" % (KEK_SPI_LEN, len(kek_spi)))
    block_bits = hashlib.new(hash_name).block_size * 8
    ack_key = hmac.new(bytes(kek_key),
                       C.ACK_KEY_LABEL + bytes(kek_spi) + struct.pack("!I", block_bits),
                       hash_name).digest()
    return hmac.new(ack_key, bytes(seq_bytes) + bytes(id_bytes), hash_name).digest()


def hashes_equal(expected, received):
    """Constant-time comparison of two hash values (DECISIONS.md §2)."""
    return hmac.compare_digest(bytes(expected), bytes(received))


# -- Keys -----------------------------------------------------------------------------

def load_public_key(data):
    """Load a public key from DER SubjectPublicKeyInfo (SIG_ALGORITHM_KEY in gdoid),
    PEM, or a DER PKCS#1 RSAPublicKey. Raises GDOICryptoError on anything else."""
    _need_cryptography()
    if isinstance(data, str):
        data = data.encode()
    data = bytes(data)
    loaders = (serialization.load_pem_public_key,) if b"-----BEGIN" in data else (
        serialization.load_der_public_key,)
    for loader in loaders:
        try:
            return loader(data)
        except (ValueError, TypeError):
            pass
    try:  # bare PKCS#1 RSAPublicKey (some key servers send it without the SPKI wrap)
        return serialization.load_der_public_key(_wrap_pkcs1_rsa_public_key(data))
    except (ValueError, TypeError):
        pass
    raise GDOICryptoError("not a public key (DER SubjectPublicKeyInfo, PEM or PKCS#1 RSA)")


def _der_len(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _wrap_pkcs1_rsa_public_key(pkcs1):
    # SubjectPublicKeyInfo { AlgorithmIdentifier rsaEncryption NULL, BIT STRING pkcs1 }
    alg = bytes.fromhex("300d06092a864886f70d0101010500")
    bitstring = b"\x03" + _der_len(len(pkcs1) + 1) + b"\0" + pkcs1
    body = alg + bitstring
    return b"\x30" + _der_len(len(body)) + body


def public_key_der(public_key):
    """DER SubjectPublicKeyInfo of a key, as SIG_ALGORITHM_KEY carries it."""
    _need_cryptography()
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


#: SIG_ALGORITHM value -> the curve an ECDSA key must use (RFC 6407 §5.3.1).
ECDSA_CURVES = {C.SIG_ALG_ECDSA_256: "secp256r1", C.SIG_ALG_ECDSA_384: "secp384r1",
                C.SIG_ALG_ECDSA_521: "secp521r1"}


def signature_length(key):
    """Octets of a rekey signature made with `key` (public or private).

    RSA: the modulus size. ECDSA: r ‖ s, each the curve order's size (P-521: 66).
    """
    _need_cryptography()
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return (key.key_size + 7) // 8
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return 2 * ((key.curve.key_size + 7) // 8)
    raise GDOICryptoError("unsupported signing key type %s" % type(key).__name__)


def public_key_bits(key):
    """Size in bits of a signing key as SIG_KEY_LENGTH states it (RFC 6407 §5.3.1,
    facts §4.3): the RSA modulus bits, or the ECDSA curve's bits (256/384/521)."""
    _need_cryptography()
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return key.key_size
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return key.curve.key_size
    raise GDOICryptoError("unsupported signing key type %s" % type(key).__name__)


def signature_algorithm_of(key):
    """SIG_ALGORITHM value matching a key (RSA, or ECDSA by curve)."""
    _need_cryptography()
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return C.SIG_ALG_RSA
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        for alg, curve in ECDSA_CURVES.items():
            if key.curve.name == curve:
                return alg
    raise GDOICryptoError("unsupported signing key type %s" % type(key).__name__)


# -- Signatures -----------------------------------------------------------------------

def sign(private_key, hash_alg, data, digest_info=True):
    """Sign `data` for a SIG payload.

    RSA: PKCS#1 v1.5; with ``digest_info=False`` the type-1 padding wraps the bare digest
    (no DigestInfo), as the Cisco reference implementation does (facts §4.3).
    ECDSA: the wire form is raw ``r ‖ s``, each left-padded to the curve order's octet
    size (64 / 96 / 132 octets for P-256 / P-384 / P-521); the verifier also accepts DER.
    """
    _need_cryptography()
    name = sig_hash_name(hash_alg)
    if isinstance(private_key, rsa.RSAPrivateKey):
        if digest_info:
            return private_key.sign(data, padding.PKCS1v15(), _crypto_hash(name))
        return _rsa_sign_bare_digest(private_key, hashlib.new(name, data).digest())
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        der = private_key.sign(data, ec.ECDSA(_crypto_hash(name)))
        r, s = decode_dss_signature(der)
        width = signature_length(private_key) // 2
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    raise GDOICryptoError("unsupported signing key type %s" % type(private_key).__name__)


def _rsa_sign_bare_digest(private_key, digest):
    # EMSA-PKCS1-v1_5 type 1 over the digest itself (RFC 8017 §9.2 without the
    # DigestInfo step), then the raw RSA private operation. cryptography has no API
    # for this legacy form, so do the modular exponentiation on the key numbers.
    numbers = private_key.private_numbers()
    k = (private_key.key_size + 7) // 8
    if len(digest) > k - 11:
        raise GDOICryptoError("RSA key too small for this digest")
    encoded = b"\x00\x01" + b"\xff" * (k - 3 - len(digest)) + b"\x00" + digest
    m = int.from_bytes(encoded, "big")
    return pow(m, numbers.d, numbers.public_numbers.n).to_bytes(k, "big")


def verify(public_key, hash_alg, data, signature):
    """True when `signature` is a valid rekey signature of `data`, else False.

    RSA: PKCS#1 v1.5 with DigestInfo, or (Cisco reference, facts §4.3) type-1 padding
    over the bare digest, checked with the raw public operation (recover). ECDSA: raw
    ``r ‖ s`` (fixed width) or DER. Never raises for a bad signature.
    """
    _need_cryptography()
    name = sig_hash_name(hash_alg)
    signature = bytes(signature)
    if isinstance(public_key, rsa.RSAPublicKey):
        return _rsa_verify(public_key, name, data, signature)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _ecdsa_verify(public_key, name, data, signature)
    raise GDOICryptoError("unsupported public key type %s" % type(public_key).__name__)


def _rsa_verify(public_key, name, data, signature):
    if len(signature) != (public_key.key_size + 7) // 8:
        return False  # gdoid checks SIG length == modulus size before verifying
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), _crypto_hash(name))
        return True
    except InvalidSignature:
        pass
    try:
        recovered = public_key.recover_data_from_signature(
            signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return hashes_equal(hashlib.new(name, data).digest(), recovered)


def _ecdsa_verify(public_key, name, data, signature):
    width = signature_length(public_key) // 2
    if len(signature) == 2 * width:
        der = encode_dss_signature(int.from_bytes(signature[:width], "big"),
                                   int.from_bytes(signature[width:], "big"))
    else:
        der = signature  # accept DER-encoded ECDSA-Sig-Value too
    try:
        public_key.verify(der, data, ec.ECDSA(_crypto_hash(name)))
        return True
    except (InvalidSignature, ValueError):
        return False
