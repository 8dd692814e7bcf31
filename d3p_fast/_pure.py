# SPDX-License-Identifier: GPL-2.0-only
"""Pure-Python twin of the d3p_fast C extension: same API, same answers.

It is the reference the C code is tested against (tests/test_d3p_window.py runs
one suite on both), and the implementation a machine without a compiler gets.
The argument checks live here only; the C wrappers in `_c.py` call them when
cffi rejects an argument, so both implementations raise the same errors.

Wire format and window rule: DECISIONS.md §3 (project decision).
"""
import collections
import operator
import struct
import sys

from scapy_gdoi._consts import (D3P_HEADER_LEN, D3P_MIN_HEADER_LEN_UNITS,
                                D3P_TS_POSIX_TIME_MSEC)

IMPLEMENTATION = "python"
#: Which code runs check_packet (d3p_fast/_c.py also has "cpython" and "cffi").
CHECK_PACKET_IMPLEMENTATION = "python"

#: Window verdicts; the numbers are those of `enum d3p_verdict` in csrc/d3p_window.h.
FRESH = 0
TOO_OLD = 1
TOO_NEW = 2
MALFORMED = 3
VERDICT_NAMES = {FRESH: "fresh", TOO_OLD: "too old", TOO_NEW: "too new",
                 MALFORMED: "malformed"}

U64_MAX = (1 << 64) - 1
#: Header Length counts 4-octet words (DECISIONS.md §3).
HEADER_WORD_OCTETS = 4
_TIMESTAMP = struct.Struct("!Q")
_TIMESTAMP_OFFSET = 4  # octets 4..11 of the header

#: Per-verdict counts returned by check_batch(); also indexable by verdict.
BatchCounts = collections.namedtuple("BatchCounts", "fresh too_old too_new malformed")


# -- argument checks (shared with the C wrappers) ---------------------------------------

def as_u64(value, name):
    """Return *value* as an int in 0..2**64-1, or raise TypeError/ValueError.

    Anything with __index__ is accepted (int, bool, numpy integers); floats and
    objects that merely define __int__ (Decimal) are refused rather than truncated.
    """
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (name, type(value).__name__)) from None
    if not 0 <= number <= U64_MAX:
        raise ValueError("%s must be in 0..2**64-1, got %d" % (name, number))
    return number


def as_offset(value):
    """Return *offset* as a non-negative int (it may exceed the buffer: MALFORMED)."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError("offset must be an integer, not %s" % type(value).__name__) from None
    if number < 0:
        raise ValueError("offset must not be negative, got %d" % number)
    return number


def packet_view(data):
    """Return the octets of bytes-like *data* as a 1-D unsigned-byte memoryview."""
    if isinstance(data, str):
        raise TypeError("data must be a bytes-like object, not str")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("data must be a bytes-like object, not %s"
                        % type(data).__name__) from None
    if not view.c_contiguous:
        raise ValueError("data must be a C-contiguous buffer")
    if view.format == "B" and view.ndim == 1:
        return view
    return _as_octets(view)


def _as_octets(view):
    # memoryview.cast() only starts from native one-letter formats; anything
    # else (numpy '>u8', structured dtypes) is copied, which is rare and correct.
    try:
        return view.cast("B")
    except (TypeError, ValueError):
        return memoryview(view.tobytes())


_NATIVE_ORDER = "<" if sys.byteorder == "little" else ">"
# Struct codes of a native unsigned 64-bit integer: 'Q' everywhere, 'L' where
# C long is 64 bits (numpy's uint64 on Linux); '@', '=' and the native '<'/'>'
# all mean native byte order for them.
_U64_CODES = {code for code in "QL" if struct.calcsize(code) == 8}
_NATIVE_PREFIXES = ("", "@", "=", _NATIVE_ORDER)


def timestamps_view(timestamps):
    """Return *timestamps* as a 1-D memoryview of native unsigned 64-bit integers."""
    try:
        view = memoryview(timestamps)
    except TypeError:
        raise TypeError("timestamps must be a buffer of unsigned 64-bit integers "
                        "(array('Q'), numpy uint64, ...), not %s"
                        % type(timestamps).__name__) from None
    code = view.format[-1:]
    prefix = view.format[:-1]
    if view.itemsize != 8 or code not in _U64_CODES:
        raise TypeError("timestamps must hold unsigned 64-bit integers, got buffer format %r"
                        % view.format)
    if prefix not in _NATIVE_PREFIXES:
        raise ValueError("timestamps must be in native byte order, got buffer format %r"
                         % view.format)
    if not view.c_contiguous:
        raise ValueError("timestamps must be a C-contiguous buffer")
    return _as_octets(view).cast("Q")


def verdicts_view(verdicts, count):
    """Return writable *verdicts* as a 1-D unsigned-byte memoryview of *count* items."""
    try:
        view = memoryview(verdicts)
    except TypeError:
        raise TypeError("verdicts must be a writable byte buffer (bytearray, numpy uint8), "
                        "not %s" % type(verdicts).__name__) from None
    if view.readonly:
        raise TypeError("verdicts must be a writable buffer")
    if view.itemsize != 1 or view.format.lstrip("@") not in ("B", "b", "c"):
        raise TypeError("verdicts must hold single octets, got buffer format %r" % view.format)
    if not view.c_contiguous:
        raise ValueError("verdicts must be a C-contiguous buffer")
    if view.nbytes != count:
        raise ValueError("verdicts holds %d items for %d timestamps" % (view.nbytes, count))
    return view.cast("B")


# -- the window rule ------------------------------------------------------------------

def _window(timestamp_ms, now_ms, window_ms):
    # delta = N - T as a Python int is exact for every 64-bit input, so the rule
    # is written as in DECISIONS.md §3: fresh when -W <= delta <= W.
    delta = now_ms - timestamp_ms
    if delta > window_ms:
        return TOO_OLD
    if delta < -window_ms:
        return TOO_NEW
    return FRESH


def verdict(timestamp_ms, now_ms, window_ms):
    """Window verdict (FRESH, TOO_OLD or TOO_NEW) for one timestamp.

    :param timestamp_ms: the packet's POSIX time in ms, 0..2**64-1
    :param now_ms: the receiver's POSIX time in ms, 0..2**64-1
    :param window_ms: the window W in ms, 0..2**64-1; edges are inclusive
    """
    return _window(as_u64(timestamp_ms, "timestamp_ms"), as_u64(now_ms, "now_ms"),
                   as_u64(window_ms, "window_ms"))


def _header_timestamp(view, offset):
    # The checks of DECISIONS.md §3, in the order d3p_check_packet() makes them.
    if offset + D3P_HEADER_LEN > len(view):
        return None  # truncated, or offset past the end
    header_words = view[offset + 1]
    # Header Length > 3 announces extra 4-octet words: legal while they fit.
    if (header_words < D3P_MIN_HEADER_LEN_UNITS
            or offset + header_words * HEADER_WORD_OCTETS > len(view)):
        return None
    if view[offset + 2] != D3P_TS_POSIX_TIME_MSEC:
        return None
    return _TIMESTAMP.unpack_from(view, offset + _TIMESTAMP_OFFSET)[0]


def parse_timestamp(data, offset=0):
    """Return the Timestamp of the D3P header at *data[offset]*, or None if malformed.

    Malformed means: fewer than 12 octets from *offset*, a Header Length below 3
    or running past the buffer, or a Timestamp Type other than POSIX-TIME-MSEC.
    """
    view = packet_view(data)
    return _header_timestamp(view, as_offset(offset))


def check_packet(data, now_ms, window_ms, offset=0):
    """Verdict for the D3P header at *data[offset]*: MALFORMED or the window verdict.

    :param data: any bytes-like object (bytes, bytearray, memoryview, numpy array)
    :param offset: where the D3P header starts; beyond the end of data is MALFORMED
    :raises TypeError, ValueError: for arguments of the wrong type or range, checked
        in the order data, now_ms, window_ms, offset
    """
    view = packet_view(data)
    now_ms = as_u64(now_ms, "now_ms")
    window_ms = as_u64(window_ms, "window_ms")
    timestamp = _header_timestamp(view, as_offset(offset))
    if timestamp is None:
        return MALFORMED
    return _window(timestamp, now_ms, window_ms)


def check_batch(timestamps, now_ms, window_ms, verdicts=None):
    """Window verdict counts for a buffer of native unsigned 64-bit timestamps.

    :param timestamps: array('Q'), numpy uint64 array, memoryview of format 'Q', ...
    :param verdicts: optional writable byte buffer of the same length, filled with
        one verdict per timestamp
    :returns: BatchCounts(fresh, too_old, too_new, malformed); malformed is 0
    """
    values = timestamps_view(timestamps)
    now_ms = as_u64(now_ms, "now_ms")
    window_ms = as_u64(window_ms, "window_ms")
    out = None if verdicts is None else verdicts_view(verdicts, len(values))
    counts = [0, 0, 0, 0]
    if out is None:
        for timestamp in values:
            counts[_window(timestamp, now_ms, window_ms)] += 1
    else:
        for index, timestamp in enumerate(values):
            result = _window(timestamp, now_ms, window_ms)
            out[index] = result
            counts[result] += 1
    return BatchCounts(*counts)
