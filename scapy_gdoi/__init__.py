# SPDX-License-Identifier: GPL-2.0-only
"""scapy-gdoi: Scapy layers and tools for GDOI (RFC 6407), RFC 8263 ACKs and IP-D3P.

Importing the package registers every layer: GDOI on UDP 848 (both directions)
and IP-D3P over IPv4 / IPv6 / ESP tunnel mode. Crypto (decrypting and verifying
rekeys, ACK hashes) lives beside the layers in :mod:`scapy_gdoi.rekey`,
:mod:`scapy_gdoi.ack` and :mod:`scapy_gdoi.crypto`; key-server rules in
:mod:`scapy_gdoi.policy`. Dissection needs no keys and no `cryptography`.
"""

from scapy_gdoi.gdoi import *  # noqa: F401,F403
from scapy_gdoi.gdoi import __all__ as _gdoi_all
from scapy_gdoi.d3p import *  # noqa: F401,F403
from scapy_gdoi.d3p import __all__ as _d3p_all

__version__ = "0.1.0"
__all__ = list(_gdoi_all) + list(_d3p_all)
