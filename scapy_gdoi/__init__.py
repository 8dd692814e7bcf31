# SPDX-License-Identifier: GPL-2.0-only
"""scapy-gdoi: Scapy layers and tools for GDOI (RFC 6407), RFC 8263 ACKs and IP-D3P.

Importing the package registers every layer: GDOI on UDP 848 (both directions)
and IP-D3P over IP / IPv6 / ESP tunnel mode.
"""

from scapy_gdoi.gdoi import *  # noqa: F401,F403
from scapy_gdoi.gdoi import __all__ as _gdoi_all

__version__ = "0.1.0"
__all__ = list(_gdoi_all)
