# SPDX-License-Identifier: GPL-2.0-only
"""d3p_fast: the IP-D3P window check (DECISIONS.md §3) in C, with a pure-Python twin.

Public API (identical in both implementations, same answers, same errors):

- ``FRESH``, ``TOO_OLD``, ``TOO_NEW``, ``MALFORMED``: verdict constants;
- ``verdict(timestamp_ms, now_ms, window_ms)``: the window rule for one timestamp;
- ``check_packet(data, now_ms, window_ms, offset=0)``: parse the D3P header at
  *offset* of a bytes-like object and return its verdict (MALFORMED when the
  header is truncated, has a Header Length below 3 or past the buffer, or an
  unknown Timestamp Type);
- ``parse_timestamp(data, offset=0)``: the header's timestamp, or None if malformed;
- ``check_batch(timestamps, now_ms, window_ms, verdicts=None)``: counts over a
  buffer of native unsigned 64-bit timestamps, optionally filling *verdicts*;
- ``IMPLEMENTATION``: ``"c"`` or ``"python"``;
- ``CHECK_PACKET_IMPLEMENTATION``: what runs ``check_packet``: ``"cpython"`` (the
  vectorcall builtin of d3p_fast._d3p_single, the fast one), ``"cffi"`` (the cffi
  wrapper, when only _d3p_single is missing or stale: no warning) or ``"python"``.

Window rule: with delta = now - timestamp as an exact integer, a packet is fresh
when -W <= delta <= W, too old when delta > W, too new when delta < -W; every
64-bit input is handled without overflow.

Choosing the implementation: ``D3P_FAST_PUREPYTHON=1`` forces the twin.  Otherwise
the C extension is used when it is built and its ``D3P_FAST_ABI`` matches this
package; if not, the twin is used and one RuntimeWarning says why.  With
``D3P_FAST_REQUIRE_C=1`` (the variable setup.py also honours) a missing or stale
extension is an ImportError instead.
"""
import os
import warnings

#: The D3P_FAST_ABI this Python code was written against (csrc/d3p_window.h).
EXPECTED_ABI = 1

__all__ = ["FRESH", "TOO_OLD", "TOO_NEW", "MALFORMED", "VERDICT_NAMES", "BatchCounts",
           "verdict", "check_packet", "parse_timestamp", "check_batch", "IMPLEMENTATION",
           "CHECK_PACKET_IMPLEMENTATION", "EXPECTED_ABI"]


def _load_c():
    """Return the C wrappers module, or raise ImportError saying why not."""
    from d3p_fast import _c
    if _c.COMPILED_ABI != EXPECTED_ABI:
        raise ImportError("d3p_fast._d3p_fast is stale: compiled D3P_FAST_ABI %d, this package "
                          "expects %d; rebuild it (python d3p_fast/_build.py or pip install)"
                          % (_c.COMPILED_ABI, EXPECTED_ABI))
    return _c


def _select():
    from d3p_fast import _pure
    if os.environ.get("D3P_FAST_PUREPYTHON") == "1":
        return _pure
    try:
        return _load_c()
    except ImportError as exc:
        if os.environ.get("D3P_FAST_REQUIRE_C") == "1":
            raise
        warnings.warn("d3p_fast: C extension unavailable (%s); using the pure-Python "
                      "implementation" % (exc,), RuntimeWarning, stacklevel=3)
        return _pure


_impl = _select()

FRESH = _impl.FRESH
TOO_OLD = _impl.TOO_OLD
TOO_NEW = _impl.TOO_NEW
MALFORMED = _impl.MALFORMED
VERDICT_NAMES = _impl.VERDICT_NAMES
BatchCounts = _impl.BatchCounts
verdict = _impl.verdict
check_packet = _impl.check_packet
parse_timestamp = _impl.parse_timestamp
check_batch = _impl.check_batch
IMPLEMENTATION = _impl.IMPLEMENTATION
CHECK_PACKET_IMPLEMENTATION = _impl.CHECK_PACKET_IMPLEMENTATION

del _select
