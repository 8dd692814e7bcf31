# SPDX-License-Identifier: GPL-2.0-only
"""Every protocol number scapy-gdoi uses, in one place, each with its source.

Tags follow the project's fact digest: [C] confirmed by a public source, [C2] by two
independent implementations, [S] secondary source only. Numbers that could not be
checked against an RFC text are *project decisions*: they are marked
"project decision, see DECISIONS.md" and live only here, so one edit realigns the
whole project when the authoritative text turns up.

Sources: RFC 2408 (ISAKMP), RFC 2407 (IPsec DOI), RFC 6407 (GDOI), RFC 3547 (GDOI,
obsoleted), RFC 8263 (GROUPKEY-PUSH ACK), draft-weis-delay-detection (IP-D3P);
implementations: Cisco GDOI reference implementation (gdoid), Wireshark
packet-isakmp.c, DigiCert TrustCore.
"""

# -- Transport ------------------------------------------------------------------------

#: IANA "gdoi" port; phase 1, GROUPKEY-PULL and GROUPKEY-PUSH all use it. [S] RFC 6407 §2
GDOI_UDP_PORT = 848

# -- ISAKMP header (RFC 2408 §3.1) ----------------------------------------------------

ISAKMP_VERSION = 0x10  # major 1, minor 0 [C]
ISAKMP_HEADER_LEN = 28  # octets [C] RFC 2408 §3.1
ISAKMP_COOKIE_LEN = 8  # Initiator and Responder Cookie, 8 octets each
#: GROUPKEY-PUSH and its ACKs carry the 16-octet KEK SPI as their two cookies
#: (RFC 6407 §4, §5.3). [C2]
KEK_SPI_LEN = 2 * ISAKMP_COOKIE_LEN
GENERIC_PAYLOAD_HEADER_LEN = 4  # Next Payload, RESERVED, Payload Length [C] RFC 2408 §3.2
SEQ_PAYLOAD_LEN = 8  # generic header + 32-bit Sequence Number [C2] RFC 6407 §5.7
ID_PAYLOAD_HEADER_LEN = 8  # generic header, ID Type, Protocol ID, Port [C] RFC 2407 §4.6.2

# Data attributes (RFC 2408 §3.3): the AF bit marks a basic (TV) attribute, whose
# value is 16 bits; larger values need the variable (TLV) form.
ATTRIBUTE_FORMAT_TV = 0x8000
ATTRIBUTE_TYPE_MAX = 0x7FFF
TV_ATTRIBUTE_MAX = 0xFFFF
FLAG_ENCRYPTION = 0x01  # E [C]
FLAG_COMMIT = 0x02  # C [C]
FLAG_AUTH_ONLY = 0x04  # A [C]

#: Domain of Interpretation numbers (RFC 2408 §3.4; IANA "ISAKMP DOI").
DOI_ISAKMP = 0
DOI_IPSEC = 1
DOI_GDOI = 2  # [C2] RFC 6407 §2.1, gdoid GROUP_DOI, Wireshark
DOI_NAMES = {DOI_ISAKMP: "ISAKMP", DOI_IPSEC: "IPSEC", DOI_GDOI: "GDOI"}

#: GDOI defines no situation; the field is always 0. [C2] RFC 6407 §5.1
GDOI_SITUATION = 0

# Exchange types. 32 means IKEv1 Quick Mode in the IPsec DOI and GROUPKEY-PULL in
# the GDOI; on UDP 848 it is always the latter.
EXCH_MAIN_MODE = 2  # identity protection, RFC 2408 §4.7
EXCH_AGGRESSIVE = 4  # RFC 2408 §4.8
EXCH_INFORMATIONAL = 5  # RFC 2408 §4.8
EXCH_GROUPKEY_PULL = 32  # [C2] RFC 6407 §3, gdoid PULL_MODE
EXCH_GROUPKEY_PUSH = 33  # [C2] RFC 6407 §4, gdoid PUSH_MODE
#: RFC 8263 GROUPKEY-PUSH-ACK. [U] project decision, see DECISIONS.md §2
EXCH_GROUPKEY_PUSH_ACK = 35
#: The Cisco-proprietary unicast rekey ACK is undocumented (no public number).
#: Project decision, see DECISIONS.md §2: it is classified as "a KEK-encrypted
#: message from a member to the key server whose cookies are a KEK SPI"; this is the
#: exchange type we forge it with and recognise it by.
EXCH_CISCO_REKEY_ACK = 34

GDOI_EXCHANGE_TYPES = {
    0: "None",
    1: "base",
    EXCH_MAIN_MODE: "identity protection",
    3: "authentication only",
    EXCH_AGGRESSIVE: "aggressive",
    EXCH_INFORMATIONAL: "informational",
    EXCH_GROUPKEY_PULL: "GROUPKEY-PULL",
    EXCH_GROUPKEY_PUSH: "GROUPKEY-PUSH",
    EXCH_CISCO_REKEY_ACK: "CISCO-REKEY-ACK",
    EXCH_GROUPKEY_PUSH_ACK: "GROUPKEY-PUSH-ACK",
}

#: Exchanges whose SA payload carries the GDOI SA body (RFC 6407 §5.1); in phase 1
#: (Main / Aggressive Mode) the SA keeps the ISAKMP proposal/transform layout.
GDOI_SA_EXCHANGES = (EXCH_GROUPKEY_PULL, EXCH_GROUPKEY_PUSH)

# -- Payload types (RFC 2408 §3.1, RFC 6407 §5) ---------------------------------------

PT_NONE = 0
PT_SA = 1
PT_PROPOSAL = 2
PT_TRANSFORM = 3
PT_KE = 4
PT_ID = 5
PT_CERT = 6
PT_CR = 7
PT_HASH = 8
PT_SIG = 9
PT_NONCE = 10
PT_NOTIFY = 11
PT_DELETE = 12
PT_VENDOR_ID = 13
PT_SAK = 15  # SA KEK [C] RFC 6407 §5, Wireshark, gdoid, DigiCert
PT_SAT = 16  # SA TEK [C]
PT_KD = 17  # Key Download [C]
PT_SEQ = 18  # Sequence Number [C]
PT_POP = 19  # Proof of Possession, RFC 3547 only (RFC 6407 removed it) [C]
PT_GAP = 22  # Group Associated Policy [C] RFC 6407 §5.2.2

#: The payload chain a Cisco rekey ACK must carry, exactly (its plaintext after KEK
#: decryption). [U] project decision, see DECISIONS.md §2
CISCO_ACK_PAYLOADS = (PT_SEQ, PT_ID)

#: The payloads an SA's sub-payload chain may hold (RFC 6407 §5.1).
SA_MEMBER_TYPES = (PT_SAK, PT_GAP, PT_SAT)

GDOI_PAYLOAD_TYPES = {
    PT_NONE: "None",
    PT_SA: "SA",
    PT_PROPOSAL: "Proposal",
    PT_TRANSFORM: "Transform",
    PT_KE: "KE",
    PT_ID: "ID",
    PT_CERT: "CERT",
    PT_CR: "CR",
    PT_HASH: "HASH",
    PT_SIG: "SIG",
    PT_NONCE: "NONCE",
    PT_NOTIFY: "NOTIFY",
    PT_DELETE: "DELETE",
    PT_VENDOR_ID: "VENDOR ID",
    PT_SAK: "SA KEK",
    PT_SAT: "SA TEK",
    PT_KD: "KD",
    PT_SEQ: "SEQ",
    PT_POP: "POP",
    PT_GAP: "GAP",
}

# -- SA TEK (RFC 6407 §5.4) -----------------------------------------------------------

TEK_PROTO_ESP = 1  # [C2]
TEK_PROTO_AH = 2  # [C2] added by RFC 6407
TEK_PROTO_IEC61850 = 3  # [S] RFC 8052
SAT_PROTOCOL_IDS = {
    0: "reserved",
    TEK_PROTO_ESP: "GDOI_PROTO_IPSEC_ESP",
    TEK_PROTO_AH: "GDOI_PROTO_IPSEC_AH",
    TEK_PROTO_IEC61850: "GDOI_PROTO_IEC61850",
}

#: Encodings of the ESP/AH TEK identity blocks (DECISIONS.md §1).
ENCODING_RFC6407 = "rfc6407"  # ID Data Length is 2 octets
ENCODING_RFC3547 = "rfc3547"  # ID Data Length is 1 octet (gdoid, Cisco reference)
ENCODINGS = (ENCODING_RFC6407, ENCODING_RFC3547)

#: IPsec DOI identification types (RFC 2407 §4.6.2.1).
ID_TYPES = {
    1: "ID_IPV4_ADDR",
    2: "ID_FQDN",
    3: "ID_USER_FQDN",
    4: "ID_IPV4_ADDR_SUBNET",
    5: "ID_IPV6_ADDR",
    6: "ID_IPV6_ADDR_SUBNET",
    7: "ID_IPV4_ADDR_RANGE",
    8: "ID_IPV6_ADDR_RANGE",
    9: "ID_DER_ASN1_DN",
    10: "ID_DER_ASN1_GN",
    11: "ID_KEY_ID",
    13: "ID_OID",  # RFC 8052 [S]
}
ID_IPV4_ADDR = 1
ID_IPV4_ADDR_SUBNET = 4
ID_IPV6_ADDR = 5
ID_IPV6_ADDR_SUBNET = 6
ID_FQDN = 2
ID_USER_FQDN = 3
ID_KEY_ID = 11
#: ID types whose data is text (RFC 2407 §4.6.2.2, §4.6.2.3).
ID_TEXT_TYPES = (ID_FQDN, ID_USER_FQDN)
#: Data length each address-shaped ID type implies (RFC 2407 §4.6.2): used to render
#: and parse ID data and to score the two SA TEK encodings when both fit.
ID_DATA_LENGTHS = {1: 4, 4: 8, 5: 16, 6: 32, 7: 8, 8: 32}
#: Address family of each address-shaped ID type.
ID_ADDRESS_FAMILIES = {1: 4, 4: 4, 7: 4, 5: 6, 6: 6, 8: 6}

#: ESP transform identifiers (RFC 2407 §4.4.4, IANA "ESP Transform Identifiers").
ESP_TRANSFORMS = {
    1: "ESP_DES_IV64",
    2: "ESP_DES",
    3: "ESP_3DES",
    11: "ESP_NULL",
    12: "ESP_AES-CBC",
    13: "ESP_AES-CTR",
    18: "ESP_AES-GCM-8",
    19: "ESP_AES-GCM-12",
    20: "ESP_AES-GCM-16",
    23: "ESP_NULL_AUTH_AES-GMAC",
}
#: AH transform identifiers (RFC 2407 §4.4.3, RFC 4868).
AH_TRANSFORMS = {
    2: "AH_MD5",
    3: "AH_SHA",
    4: "AH_DES",
    5: "AH_SHA2-256",
    6: "AH_SHA2-384",
    7: "AH_SHA2-512",
}

#: IPsec SA attributes carried in an ESP/AH TEK: (name, {value: name}).
#: RFC 2407 §4.5; 14 and 15 added by RFC 6407 §5.4.1 [C] Wireshark.
IPSEC_SA_ATTRIBUTES = {
    1: ("SA_LIFE_TYPE", {1: "seconds", 2: "kilobytes"}),
    2: ("SA_LIFE_DURATION", {}),
    3: ("GROUP_DESCRIPTION", {}),
    4: ("ENCAPSULATION_MODE", {1: "Tunnel", 2: "Transport",
                               3: "UDP-Encapsulated-Tunnel",
                               4: "UDP-Encapsulated-Transport"}),
    5: ("AUTHENTICATION_ALGORITHM", {1: "HMAC-MD5", 2: "HMAC-SHA", 3: "DES-MAC",
                                     5: "HMAC-SHA2-256", 6: "HMAC-SHA2-384",
                                     7: "HMAC-SHA2-512", 9: "AES-XCBC-MAC",
                                     11: "AES-128-GMAC", 12: "AES-192-GMAC",
                                     13: "AES-256-GMAC"}),
    6: ("KEY_LENGTH", {}),
    7: ("KEY_ROUNDS", {}),
    10: ("ECN_TUNNEL", {1: "Allowed", 2: "Forbidden"}),
    11: ("EXTENDED_SEQUENCE_NUMBER", {1: "64-bit"}),
    12: ("AUTHENTICATION_KEY_LENGTH", {}),
    13: ("SIGNATURE_ENCODING_ALGORITHM", {1: "RSASSA-PKCS1-v1_5", 2: "RSASSA-PSS"}),
    14: ("ADDRESS_PRESERVATION", {1: "None", 2: "Source-Only", 3: "Destination-Only",
                                  4: "Source-and-Destination"}),
    15: ("SA_DIRECTION", {1: "Sender-Only", 2: "Receiver-Only", 3: "Symmetric"}),
}

# -- SA KEK (RFC 6407 §5.3) -----------------------------------------------------------

KEK_ALG_DES = 1
KEK_ALG_3DES = 2
KEK_ALG_AES = 3
KEK_ALGORITHMS = {KEK_ALG_DES: "KEK_ALG_DES", KEK_ALG_3DES: "KEK_ALG_3DES",
                  KEK_ALG_AES: "KEK_ALG_AES"}

SIG_HASH_MD5 = 1
SIG_HASH_SHA1 = 2
SIG_HASH_SHA256 = 3
SIG_HASH_SHA384 = 4
SIG_HASH_SHA512 = 5
SIG_HASH_ALGORITHMS = {1: "MD5", 2: "SHA1", 3: "SHA256", 4: "SHA384", 5: "SHA512"}

SIG_ALG_RSA = 1
SIG_ALG_DSS = 2
SIG_ALG_ECDSS = 3
SIG_ALG_ECDSA_256 = 4
SIG_ALG_ECDSA_384 = 5
SIG_ALG_ECDSA_521 = 6
SIG_ALGORITHMS = {1: "RSA", 2: "DSS", 3: "ECDSS", 4: "ECDSA-256", 5: "ECDSA-384",
                  6: "ECDSA-521"}

KEK_ATTR_MANAGEMENT_ALGORITHM = 1
KEK_ATTR_ALGORITHM = 2
KEK_ATTR_KEY_LENGTH = 3
KEK_ATTR_KEY_LIFETIME = 4
KEK_ATTR_SIG_HASH_ALGORITHM = 5
KEK_ATTR_SIG_ALGORITHM = 6
KEK_ATTR_SIG_KEY_LENGTH = 7
KEK_ATTR_KE_OAKLEY_GROUP = 8  # RFC 3547 only
#: RFC 8263 KEK_ACK_REQUESTED, basic (TV). [U] project decision, see DECISIONS.md §2
KEK_ATTR_ACK_REQUESTED = 9

#: KEK_ACK_REQUESTED values: the hash of the ACK method. [S]/[U] project decision,
#: see DECISIONS.md §2. 1 is what IOS calls REKEY_ACK_KEK_SHA256.
KEK_ACK_SHA256 = 1
KEK_ACK_SHA384 = 2
KEK_ACK_SHA512 = 3
KEK_ACK_METHODS = {KEK_ACK_SHA256: "REKEY_ACK_KEK_SHA256",
                   KEK_ACK_SHA384: "REKEY_ACK_KEK_SHA384",
                   KEK_ACK_SHA512: "REKEY_ACK_KEK_SHA512"}

#: KEK attributes: (name, {value: name}). [C2] gdoid gdoi_num.cst, DigiCert ike_defs.h
#: KEK cipher block and key sizes in octets (FIPS 46-3 DES, SP 800-67 3DES keying
#: option 1, FIPS 197 AES); all in CBC mode [C2] gdoid, DigiCert.
KEK_CIPHER_BLOCK_SIZES = {KEK_ALG_DES: 8, KEK_ALG_3DES: 8, KEK_ALG_AES: 16}
KEK_CIPHER_KEY_SIZES = {KEK_ALG_DES: (8,), KEK_ALG_3DES: (24,), KEK_ALG_AES: (16, 24, 32)}

KEK_ATTRIBUTES = {
    KEK_ATTR_MANAGEMENT_ALGORITHM: ("KEK_MANAGEMENT_ALGORITHM", {1: "LKH"}),
    KEK_ATTR_ALGORITHM: ("KEK_ALGORITHM", KEK_ALGORITHMS),
    KEK_ATTR_KEY_LENGTH: ("KEK_KEY_LENGTH", {}),
    KEK_ATTR_KEY_LIFETIME: ("KEK_KEY_LIFETIME", {}),
    KEK_ATTR_SIG_HASH_ALGORITHM: ("SIG_HASH_ALGORITHM", SIG_HASH_ALGORITHMS),
    KEK_ATTR_SIG_ALGORITHM: ("SIG_ALGORITHM", SIG_ALGORITHMS),
    KEK_ATTR_SIG_KEY_LENGTH: ("SIG_KEY_LENGTH", {}),
    KEK_ATTR_KE_OAKLEY_GROUP: ("KE_OAKLEY_GROUP", {}),
    KEK_ATTR_ACK_REQUESTED: ("KEK_ACK_REQUESTED", KEK_ACK_METHODS),
}

# -- GAP (RFC 6407 §5.2.2, DECISIONS.md §3) -------------------------------------------

GAP_ATTR_ACTIVATION_TIME_DELAY = 1  # [C2] seconds, TV
GAP_ATTR_DEACTIVATION_TIME_DELAY = 2  # [C2] seconds, TV
GAP_ATTR_SENDER_ID_REQUEST = 3  # [C2] count, TV
#: IP-D3P policy in the GAP. [U] project decision, see DECISIONS.md §3
GAP_ATTR_D3P_TYPE = 4  # TV
GAP_ATTR_D3P_WINDOW_SIZE = 5  # TLV, 4-octet milliseconds

#: D3P timestamp types. [U] project decision, see DECISIONS.md §3
D3P_TS_POSIX_TIME_MSEC = 1
D3P_TIMESTAMP_TYPES = {D3P_TS_POSIX_TIME_MSEC: "POSIX-TIME-MSEC"}

GAP_ATTRIBUTES = {
    GAP_ATTR_ACTIVATION_TIME_DELAY: ("ACTIVATION_TIME_DELAY", {}),
    GAP_ATTR_DEACTIVATION_TIME_DELAY: ("DEACTIVATION_TIME_DELAY", {}),
    GAP_ATTR_SENDER_ID_REQUEST: ("SENDER_ID_REQUEST", {}),
    GAP_ATTR_D3P_TYPE: ("D3P_TYPE", D3P_TIMESTAMP_TYPES),
    GAP_ATTR_D3P_WINDOW_SIZE: ("D3P_WINDOW_SIZE", {}),
}
#: Attributes always sent as TLV even when the value is small (DECISIONS.md §3,
#: RFC 6407 §5.3 for KEK_KEY_LIFETIME).
GAP_TLV_ATTRIBUTES = {GAP_ATTR_D3P_WINDOW_SIZE: 4}
KEK_TLV_ATTRIBUTES = {KEK_ATTR_KEY_LIFETIME: 4}

# -- Key Download (RFC 6407 §5.6) -----------------------------------------------------

KD_TEK = 1
KD_KEK = 2
KD_LKH = 3
KD_SID = 4
KD_TYPES = {0: "reserved", KD_TEK: "TEK", KD_KEK: "KEK", KD_LKH: "LKH", KD_SID: "SID"}
#: SPI size each key packet type carries. [C2] DigiCert InKd, Wireshark
KD_SPI_SIZES = {KD_TEK: 4, KD_KEK: 16, KD_LKH: 16, KD_SID: 0}

TEK_KEY_ATTRIBUTES = {1: ("TEK_ALGORITHM_KEY", {}), 2: ("TEK_INTEGRITY_KEY", {}),
                      3: ("TEK_SOURCE_AUTH_KEY", {})}
KEK_KEY_ALGORITHM_KEY = 1  # IV || key [C2] gdoid decode_kd_kek_attribute, DigiCert
KEK_KEY_SIG_ALGORITHM_KEY = 2  # DER SubjectPublicKeyInfo in gdoid
KEK_KEY_ATTRIBUTES = {KEK_KEY_ALGORITHM_KEY: ("KEK_ALGORITHM_KEY", {}),
                      KEK_KEY_SIG_ALGORITHM_KEY: ("SIG_ALGORITHM_KEY", {})}
LKH_KEY_ATTRIBUTES = {1: ("LKH_DOWNLOAD_ARRAY", {}), 2: ("LKH_UPDATE_ARRAY", {}),
                      3: ("LKH_SIG_ALGORITHM_KEY", {})}
SID_KEY_ATTRIBUTES = {1: ("NUMBER_OF_SID_BITS", {}), 2: ("SID_VALUE", {})}
KD_ATTRIBUTES = {KD_TEK: TEK_KEY_ATTRIBUTES, KD_KEK: KEK_KEY_ATTRIBUTES,
                 KD_LKH: LKH_KEY_ATTRIBUTES, KD_SID: SID_KEY_ATTRIBUTES}
#: Key-packet attributes that are basic (TV); all the others are TLV.
KD_TV_ATTRIBUTES = {(KD_SID, 1)}

# -- Protocol IDs, certificates, notifications (RFC 2407 §4.4.1, RFC 2408 §3.9, §3.14.1)

#: Protocol-ID of DELETE / NOTIFY payloads (IPsec DOI "Security Protocol Identifiers";
#: gdoid deletes the KEK with PROTO_ISAKMP and TEKs with the ESP/AH numbers).
PROTOCOL_IDS = {1: "PROTO_ISAKMP", 2: "PROTO_IPSEC_AH", 3: "PROTO_IPSEC_ESP", 4: "PROTO_IPCOMP"}

#: Notify Message Types (RFC 2408 §3.14.1; R-U-THERE from RFC 3706).
NOTIFY_TYPES = {
    1: "INVALID-PAYLOAD-TYPE", 2: "DOI-NOT-SUPPORTED", 3: "SITUATION-NOT-SUPPORTED",
    4: "INVALID-COOKIE", 5: "INVALID-MAJOR-VERSION", 6: "INVALID-MINOR-VERSION",
    7: "INVALID-EXCHANGE-TYPE", 8: "INVALID-FLAGS", 9: "INVALID-MESSAGE-ID",
    10: "INVALID-PROTOCOL-ID", 11: "INVALID-SPI", 12: "INVALID-TRANSFORM-ID",
    13: "ATTRIBUTES-NOT-SUPPORTED", 14: "NO-PROPOSAL-CHOSEN", 15: "BAD-PROPOSAL-SYNTAX",
    16: "PAYLOAD-MALFORMED", 17: "INVALID-KEY-INFORMATION", 18: "INVALID-ID-INFORMATION",
    19: "INVALID-CERT-ENCODING", 20: "INVALID-CERTIFICATE", 21: "CERT-TYPE-UNSUPPORTED",
    22: "INVALID-CERT-AUTHORITY", 23: "INVALID-HASH-INFORMATION", 24: "AUTHENTICATION-FAILED",
    25: "INVALID-SIGNATURE", 26: "ADDRESS-NOTIFICATION", 27: "NOTIFY-SA-LIFETIME",
    28: "CERTIFICATE-UNAVAILABLE", 29: "UNSUPPORTED-EXCHANGE-TYPE",
    30: "UNEQUAL-PAYLOAD-LENGTHS", 16384: "CONNECTED", 36136: "R-U-THERE",
    36137: "R-U-THERE-ACK",
}

CERT_ENCODINGS = {1: "PKCS #7 wrapped X.509", 2: "PGP", 3: "DNS Signed Key",
                  4: "X.509 Certificate - Signature",
                  5: "X.509 Certificate - Key Exchange", 6: "Kerberos Tokens",
                  7: "CRL", 8: "ARL", 9: "SPKI", 10: "X.509 Certificate - Attribute"}

# -- Crypto recipes -------------------------------------------------------------------

#: Prefix of the data a GROUPKEY-PUSH signature covers. [C] gdoid REKEY_HEADER_STRING,
#: RFC 3547 §4.7 / RFC 6407 §4.7
REKEY_SIGNATURE_PREFIX = b"rekey"
#: Label of the RFC 8263 ACK key derivation. [S] project decision, see DECISIONS.md §2
ACK_KEY_LABEL = b"GROUPKEY-PUSH ACK"

# -- IP-D3P (draft-weis-delay-detection; wire format per DECISIONS.md §3) -------------

#: IP protocol number D3P rides on: RFC 3692 experimentation value, configurable.
#: [U] project decision, see DECISIONS.md §3 (IANA never assigned one)
D3P_IP_PROTO = 253
D3P_HEADER_LEN = 12  # octets
D3P_HEADER_LEN_UNITS = 3  # Header Length field value, in 4-octet units
D3P_MIN_HEADER_LEN_UNITS = 3

#: Window configuration ranges, key server `sa d3p window` and member
#: `client d3p window` (seed document, "Enabling IP-D3P").
D3P_WINDOW_SEC_RANGE = (1, 100)
D3P_WINDOW_MSEC_RANGE = (100, 10000)
#: Error history sampling: at most this many entries kept per minute.
D3P_ERROR_HISTORY_PER_MINUTE = 10

# -- Key-server rules (seed document) -------------------------------------------------

#: ATD = max(max(old SA remaining, 30) - 30, 1) seconds.
ATD_GUARD_SECONDS = 30
ATD_MINIMUM_SECONDS = 1
#: Consecutive unacknowledged unicast rekeys after which a member is removed.
UNACKED_REKEY_LIMIT = 3
