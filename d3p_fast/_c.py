# SPDX-License-Identifier: GPL-2.0-only
"""Thin wrappers over the compiled d3p_fast._d3p_fast module (cffi, API mode).

Each function tries the C call first with the arguments as given; only when an
argument is not a plain int / bytes (or cffi refuses it) does it take the
general path, which checks the arguments with the same helpers as `_pure`, so
both implementations raise the same TypeError / ValueError.  The common call
therefore costs one cffi call plus a few type tests (bench/bench_d3p_window.py).

``check_packet`` itself is, when it is built, the vectorcall builtin of
d3p_fast._d3p_single (d3p_fast/_single/d3p_single.c): the same C check without
cffi's argument tuple or this module's Python frame.  Its unusual arguments come
back here, to ``check_packet_cffi``, the cffi wrapper, which is ``check_packet``
when _d3p_single is missing or stale.  ``CHECK_PACKET_IMPLEMENTATION`` says which:
``"cpython"`` or ``"cffi"``.

Importing this module raises ImportError when the cffi extension is not built.
"""
from d3p_fast import _pure
from d3p_fast._d3p_fast import ffi, lib  # ImportError when not built
from d3p_fast._pure import (FRESH, MALFORMED, TOO_NEW, TOO_OLD,  # noqa: F401 (re-exported)
                            VERDICT_NAMES, BatchCounts)

IMPLEMENTATION = "c"

try:
    #: D3P_FAST_ABI of the compiled module (checked by d3p_fast/__init__.py).
    COMPILED_ABI = lib.D3P_FAST_ABI
    _c_verdict = lib.d3p_verdict
    _c_check_packet = lib.d3p_check_packet
    _c_check_batch = lib.d3p_check_batch
except AttributeError as exc:
    # A module compiled from an older header lacks what this code calls.
    raise ImportError("d3p_fast._d3p_fast is stale (%s); rebuild it" % exc) from exc

_NULL = ffi.NULL
_U64_ALIGNMENT = ffi.alignof("uint64_t")


def verdict(timestamp_ms, now_ms, window_ms):
    """Window verdict (FRESH, TOO_OLD or TOO_NEW) for one timestamp; see `_pure.verdict`."""
    # `type(x) is int` keeps out objects cffi would truncate through __int__
    # (Decimal); out-of-range ints make cffi raise OverflowError.
    if type(timestamp_ms) is int and type(now_ms) is int and type(window_ms) is int:
        try:
            return _c_verdict(timestamp_ms, now_ms, window_ms)
        except OverflowError:
            pass
    return _c_verdict(_pure.as_u64(timestamp_ms, "timestamp_ms"), _pure.as_u64(now_ms, "now_ms"),
                      _pure.as_u64(window_ms, "window_ms"))


def check_packet(data, now_ms, window_ms, offset=0):
    """Verdict for the D3P header at *data[offset]*; see `_pure.check_packet`.

    The cffi wrapper, kept as ``check_packet_cffi`` (its name stays
    ``check_packet`` so arity errors read as the pure twin's).
    """
    if type(now_ms) is int and type(window_ms) is int and type(offset) is int:
        # cffi passes a bytes object's own storage as the pointer (no copy); any
        # other buffer needs a cffi view, whose len() counts octets.
        octets = data if type(data) is bytes else _octets(data)
        try:
            return _c_check_packet(octets, len(octets), offset, now_ms, window_ms, _NULL)
        except OverflowError:
            pass  # a negative or huge int: the general path words the error
    return _check_packet_general(data, now_ms, window_ms, offset)


def _octets(data):
    """A cffi view of bytes-like *data* whose len() is its size in octets."""
    try:
        return ffi.from_buffer(data)
    except (TypeError, ValueError, BufferError):
        # Let the shared checks word the error (or copy an exotic format).
        return ffi.from_buffer(_pure.packet_view(data))


def _check_packet_general(data, now_ms, window_ms, offset):
    # Same order of checks as _pure.check_packet, so a call with two bad
    # arguments raises the same error from both implementations.
    octets = _octets(data)
    now_ms = _pure.as_u64(now_ms, "now_ms")
    window_ms = _pure.as_u64(window_ms, "window_ms")
    offset = _pure.as_offset(offset)
    if offset > len(octets):  # also covers offsets that do not fit a size_t
        return MALFORMED
    return _c_check_packet(octets, len(octets), offset, now_ms, window_ms, _NULL)


def parse_timestamp(data, offset=0):
    """Timestamp of the D3P header at *data[offset]*, or None; see `_pure.parse_timestamp`."""
    octets = _octets(data)
    offset = _pure.as_offset(offset)
    if offset > len(octets):
        return None
    timestamp = ffi.new("uint64_t *")
    # The window arguments are irrelevant here: only MALFORMED matters.
    if _c_check_packet(octets, len(octets), offset, 0, 0, timestamp) == MALFORMED:
        return None
    return timestamp[0]


def _timestamps_pointer(timestamps):
    view = _pure.timestamps_view(timestamps)
    pointer = ffi.from_buffer("uint64_t[]", view)
    if len(pointer) and int(ffi.cast("uintptr_t", pointer)) % _U64_ALIGNMENT:
        # A misaligned uint64_t read is undefined behaviour in C: copy once.
        pointer = ffi.new("uint64_t[]", len(view))
        ffi.memmove(pointer, view, view.nbytes)
    return pointer


def check_batch(timestamps, now_ms, window_ms, verdicts=None):
    """Window verdict counts for native uint64 timestamps; see `_pure.check_batch`.

    One pass in C over the buffer, without copying it (unless misaligned).
    """
    pointer = _timestamps_pointer(timestamps)
    now_ms = _pure.as_u64(now_ms, "now_ms")
    window_ms = _pure.as_u64(window_ms, "window_ms")
    if verdicts is None:
        out = _NULL
    else:
        out = ffi.from_buffer("uint8_t[]", _pure.verdicts_view(verdicts, len(pointer)),
                              require_writable=True)
    counts = ffi.new("uint64_t[4]")
    _c_check_batch(pointer, len(pointer), now_ms, window_ms, counts, out)
    return BatchCounts(*counts)


# -- check_packet: the vectorcall builtin when it is built ------------------------------

#: The cffi wrapper: the general path of the _d3p_single builtin (which hands it
#: every call it does not take itself), and check_packet when that is missing.
check_packet_cffi = check_packet


def _single_check_packet():
    """The _d3p_single builtin if it is built from the same header, else None."""
    try:
        from d3p_fast import _d3p_single
    except ImportError:
        return None  # not built (no compiler, or a cffi-only build)
    if getattr(_d3p_single, "D3P_FAST_ABI", None) != COMPILED_ABI:
        return None  # compiled from another d3p_window.h: stale
    return _d3p_single.check_packet


check_packet = _single_check_packet() or check_packet_cffi
#: "cpython" (the _d3p_single builtin) or "cffi" (the wrapper above).
CHECK_PACKET_IMPLEMENTATION = "cffi" if check_packet is check_packet_cffi else "cpython"
