"""Annotated byte vectors for the GDOI layers, one field per line (gptp style).

Each vector names its source. None of them was produced by scapy-gdoi.
"""


def _hex(text):
    """Bytes from an annotated hex block: everything after '#' on a line is a comment."""
    return bytes.fromhex("".join(line.split("#")[0].replace(" ", "") for line in text.splitlines()))


# RFC 6407 SA block, from the project's protocol fact digest §2.9 ("generated with
# struct.pack, checked by hand"): SAK (UDP, 10.0.0.1:848 -> 239.1.1.1:848, AES-128,
# lifetime 86400 s, SHA256, RSA 2048), GAP (ATD 10 s), one ESP SAT (10.1.0.0/16 ->
# 239.1.1.0/24, AES-CBC, SPI 0x11223344, 3600 s, tunnel, HMAC-SHA, 128-bit key).
SA_RFC6407_EXAMPLE = _hex("""
11 00 009a            # SA: next payload KD (17), reserved, length 154
00000002              # DOI 2 (GDOI)
00000000              # situation 0
000f 0000             # SA Attribute Next Payload = SA KEK (2 octets), RESERVED2
16 00 0045            # SAK: next payload GAP (22), length 69
11                    #   protocol UDP
01 0350 04 0a000001   #   SRC ID: IPV4_ADDR, port 848, length 4 (1 octet), 10.0.0.1
01 0350 04 ef010101   #   DST ID: IPV4_ADDR, port 848, length 4, 239.1.1.1
101112131415161718191a1b1c1d1e1f  # KEK SPI
00000000              #   RESERVED2
8002 0003             #   KEK_ALGORITHM = AES (TV)
8003 0080             #   KEK_KEY_LENGTH = 128 bits
0004 0004 00015180    #   KEK_KEY_LIFETIME = 86400 s (TLV, 4 octets)
8005 0003             #   SIG_HASH_ALGORITHM = SHA256
8006 0001             #   SIG_ALGORITHM = RSA
8007 0800             #   SIG_KEY_LENGTH = 2048
10 00 0008            # GAP: next payload SAT (16), length 8
8001 000a             #   ACTIVATION_TIME_DELAY = 10 s
00 00 003d            # SAT: last sub-payload, length 61
01                    #   Protocol-ID ESP
00                    #   protocol any
04 0000 0008 0a010000 ffff0000   # SRC ID: IPV4_ADDR_SUBNET, port 0, length 8 (2 octets)
04 0000 0008 ef010100 ffffff00   # DST ID
0c                    #   transform ESP_AES-CBC
11223344              #   SPI
8001 0001             #   SA_LIFE_TYPE = seconds
0002 0004 00000e10    #   SA_LIFE_DURATION = 3600 (TLV)
8004 0001             #   ENCAPSULATION_MODE = tunnel
8005 0002             #   AUTHENTICATION_ALGORITHM = HMAC-SHA
8006 0080             #   KEY_LENGTH = 128
""")

# The same SAT in the RFC 3547 form used by the Cisco reference implementation,
# taken from the 3-clients key-server capture (frame 31 plaintext, first SA TEK):
SAT_RFC3547_GDOID = _hex("""
10 00 002b            # SAT: next payload SAT, length 43
01                    # Protocol-ID ESP
00                    # protocol any
01 0000 04 0a00e025   # SRC ID: IPV4_ADDR, port 0, length 4 (1 octet!), 10.0.224.37
01 0000 04 ef010101   # DST ID: IPV4_ADDR, port 0, length 4, 239.1.1.1
03                    # transform ESP_3DES
2e22fbb7              # SPI
8004 0002             # ENCAPSULATION_MODE = transport
8005 0002             # AUTHENTICATION_ALGORITHM = HMAC-SHA
8001 0001             # SA_LIFE_TYPE = seconds
8002 003c             # SA_LIFE_DURATION = 60 (TV)
""")

# RFC 2408 §3.15 DELETE of a KEK (16-octet SPI), hand-assembled.
DELETE_KEK = _hex("""
00 00 001c            # last payload, length 28
00000002              # DOI GDOI
01                    # Protocol-ID ISAKMP
10                    # SPI size 16
0001                  # one SPI
6162636465666768 3031323334353637  # the KEK SPI
""")

# A Key Download with one KEK key packet and one TEK key packet, hand-assembled
# after RFC 6407 §5.6 (values from the gdoid 3-clients run).
KD_KEK_TEK = _hex("""
00 00 0054            # KD, last payload, length 84
0002 0000             # 2 key packets, RESERVED2
02 00 0039            # key packet KEK, length 57
10 6162636465666768 3031323334353637  # SPI size 16, KEK SPI
0001 0020 4956495649564956 4142434445464748494a4b4c4d4e4f505152535455565758  # KEK_ALGORITHM_KEY: IV || 3DES key
01 00 0013            # key packet TEK, length 19
04 1122aabb           # SPI size 4, SPI
0001 0006 616263646566 # TEK_ALGORITHM_KEY (6 octets, short on purpose)
""")
