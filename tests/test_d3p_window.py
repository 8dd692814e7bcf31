"""d3p_fast: the IP-D3P window rule and header check (DECISIONS.md §3).

Every test taking the `impl` fixture runs three times: against the C extension
as d3p_fast uses it (d3p_fast._c, whose check_packet is the vectorcall builtin of
d3p_fast._d3p_single when that is built), against the same with check_packet
replaced by the cffi wrapper (what a build without _d3p_single runs, and the
builtin's general path), and against the pure-Python twin (d3p_fast._pure). Expected
verdicts come from the rule as DECISIONS.md states it (delta = now - timestamp;
fresh when -W <= delta <= W), never from either implementation's output.
"""
import array
import decimal
import importlib
import os
import struct
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scapy_gdoi import _consts
from conftest import strict_mode

U64_MAX = 2 ** 64 - 1
NOW = 1_764_878_000_000  # 2025-12-04T19:53:20Z in ms
W = 5000


def _strict():
    return strict_mode() or os.environ.get("D3P_FAST_REQUIRE_C") == "1"


def _import_built(module, what):
    """Import a compiled module; skip when it was not built, fail under CI."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if _strict():
            pytest.fail("%s must be built under CI: %s" % (what, exc))
        pytest.skip("%s not built (%s)" % (what, exc))


def _load_c():
    return _import_built("d3p_fast._c", "the d3p_fast C extension")


def _cffi_only(c_module):
    """d3p_fast._c as it is without d3p_fast._d3p_single: check_packet is the cffi wrapper."""
    api = types.SimpleNamespace(**vars(c_module))
    api.check_packet = c_module.check_packet_cffi
    api.CHECK_PACKET_IMPLEMENTATION = "cffi"
    return api


@pytest.fixture(params=["c", "cffi", "python"])
def impl(request):
    """The d3p_fast API of one implementation."""
    if request.param == "c":
        return _load_c()
    if request.param == "cffi":
        return _cffi_only(_load_c())
    return importlib.import_module("d3p_fast._pure")


@pytest.fixture(scope="module")
def c_impl():
    return _load_c()


@pytest.fixture(scope="module")
def pure():
    return importlib.import_module("d3p_fast._pure")


def expected_verdict(timestamp, now, window):
    """The rule of DECISIONS.md §3, written independently of both implementations."""
    delta = now - timestamp
    if -window <= delta <= window:
        return 0  # fresh
    return 1 if delta > window else 2  # too old / too new


def header(timestamp, *, nh=4, header_words=3, ts_type=1, reserved=0, extra=b""):
    """A D3P header laid out field by field as in DECISIONS.md §3."""
    return (bytes([nh, header_words, ts_type, reserved])
            + struct.pack("!Q", timestamp) + extra)


# -- constants --------------------------------------------------------------------------

def test_verdict_constants(impl):
    assert (impl.FRESH, impl.TOO_OLD, impl.TOO_NEW, impl.MALFORMED) == (0, 1, 2, 3)
    assert impl.IMPLEMENTATION in ("c", "python")


def test_c_enum_and_wire_constants_match_python(c_impl):
    lib = c_impl.lib
    assert (lib.D3P_FRESH, lib.D3P_TOO_OLD, lib.D3P_TOO_NEW, lib.D3P_MALFORMED) == (
        c_impl.FRESH, c_impl.TOO_OLD, c_impl.TOO_NEW, c_impl.MALFORMED)
    # The C header cannot import _consts; this keeps the two from drifting apart.
    assert lib.D3P_HEADER_OCTETS == _consts.D3P_HEADER_LEN
    assert lib.D3P_MIN_HEADER_WORDS == _consts.D3P_MIN_HEADER_LEN_UNITS
    assert lib.D3P_TIMESTAMP_POSIX_TIME_MSEC == _consts.D3P_TS_POSIX_TIME_MSEC
    assert lib.D3P_FAST_ABI == c_impl.COMPILED_ABI


# -- the window rule --------------------------------------------------------------------

EDGE_CASES = [
    # (timestamp, now, window, expected, what)
    (NOW, NOW, W, 0, "delta 0"),
    (NOW - W, NOW, W, 0, "delta +W (old edge, inclusive)"),
    (NOW + W, NOW, W, 0, "delta -W (new edge, inclusive)"),
    (NOW - W - 1, NOW, W, 1, "delta +(W+1)"),
    (NOW + W + 1, NOW, W, 2, "delta -(W+1)"),
    (NOW, NOW, 0, 0, "W = 0, delta 0"),
    (NOW - 1, NOW, 0, 1, "W = 0, delta +1"),
    (NOW + 1, NOW, 0, 2, "W = 0, delta -1"),
    (0, U64_MAX, U64_MAX, 0, "huge W covers every delta (oldest)"),
    (U64_MAX, 0, U64_MAX, 0, "huge W covers every delta (newest)"),
    (0, U64_MAX, U64_MAX - 1, 1, "delta 2**64-1 just past W"),
    (U64_MAX, 0, U64_MAX - 1, 2, "delta -(2**64-1) just past W"),
    (0, U64_MAX, 0, 1, "extreme delta, W = 0, old"),
    (U64_MAX, 0, 0, 2, "extreme delta, W = 0, new"),
    (U64_MAX, U64_MAX, 0, 0, "both at the top"),
    (0, 0, 0, 0, "both at zero"),
    (2 ** 63, 2 ** 63 - 1, 0, 2, "across the signed boundary, new"),
    (2 ** 63 - 1, 2 ** 63, 0, 1, "across the signed boundary, old"),
    (2 ** 63, 0, 2 ** 63, 0, "delta -2**63 with W = 2**63"),
    (2 ** 63 + 1, 0, 2 ** 63, 2, "delta -(2**63+1) with W = 2**63"),
    (0, 2 ** 63 + 1, 2 ** 63, 1, "delta 2**63+1 with W = 2**63"),
    (NOW, NOW, U64_MAX, 0, "huge W, delta 0"),
]


@pytest.mark.parametrize("timestamp, now, window, expected, what", EDGE_CASES,
                         ids=[case[-1] for case in EDGE_CASES])
def test_verdict_edges(impl, timestamp, now, window, expected, what):
    assert expected_verdict(timestamp, now, window) == expected  # the table itself
    assert impl.verdict(timestamp, now, window) == expected


@pytest.mark.parametrize("timestamp, now, window, expected, what", EDGE_CASES,
                         ids=[case[-1] for case in EDGE_CASES])
def test_check_packet_edges(impl, timestamp, now, window, expected, what):
    assert impl.check_packet(header(timestamp), now, window) == expected


@pytest.mark.parametrize("timestamp, now, window, expected, what", EDGE_CASES,
                         ids=[case[-1] for case in EDGE_CASES])
def test_check_batch_edges(impl, timestamp, now, window, expected, what):
    # 1 and 19 copies: the scalar loop alone, and the vector loop plus its tail.
    for copies in (1, 19):
        out = bytearray(copies)
        counts = impl.check_batch(array.array("Q", [timestamp] * copies), now, window, out)
        assert list(out) == [expected] * copies
        assert counts[expected] == copies and sum(counts) == copies
        assert impl.check_batch(array.array("Q", [timestamp] * copies), now, window) == counts


# -- check_packet: what a header must look like -----------------------------------------

def test_timestamp_is_big_endian(impl):
    data = header(NOW)
    assert impl.parse_timestamp(data) == NOW
    little = bytes(data[:4]) + NOW.to_bytes(8, "little")
    assert impl.parse_timestamp(little) == int.from_bytes(NOW.to_bytes(8, "little"), "big")
    assert impl.check_packet(little, NOW, W) != impl.FRESH


@pytest.mark.parametrize("length", range(_consts.D3P_HEADER_LEN))
def test_every_truncation_is_malformed(impl, length):
    data = header(NOW)[:length]
    assert impl.check_packet(data, NOW, W) == impl.MALFORMED
    assert impl.parse_timestamp(data) is None


def test_full_header_with_payload_is_checked(impl):
    data = header(NOW - 10) + b"\x45" + bytes(19)  # an inner IPv4 header follows
    assert impl.check_packet(data, NOW, W) == impl.FRESH


@pytest.mark.parametrize("header_words", [0, 1, 2])
def test_header_length_below_three_is_malformed(impl, header_words):
    data = header(NOW, header_words=header_words) + bytes(64)
    assert impl.check_packet(data, NOW, W) == impl.MALFORMED


def test_header_length_255_needs_1020_octets(impl):
    long_header = header(NOW, header_words=255, extra=bytes(255 * 4 - 12))
    assert len(long_header) == 1020
    assert impl.check_packet(long_header, NOW, W) == impl.FRESH
    assert impl.check_packet(long_header[:-1], NOW, W) == impl.MALFORMED
    assert impl.check_packet(header(NOW, header_words=255), NOW, W) == impl.MALFORMED


@pytest.mark.parametrize("extra_words", [1, 2, 5])
def test_longer_header_is_malformed_only_when_it_overruns(impl, extra_words):
    data = header(NOW, header_words=3 + extra_words, extra=bytes(4 * extra_words))
    assert impl.check_packet(data, NOW, W) == impl.FRESH
    for cut in range(1, 4 * extra_words + 1):
        assert impl.check_packet(data[:-cut], NOW, W) == impl.MALFORMED


@pytest.mark.parametrize("ts_type", [0, 2, 3, 0x7F, 0xFF])
def test_unknown_timestamp_type_is_malformed(impl, ts_type):
    assert ts_type not in _consts.D3P_TIMESTAMP_TYPES
    data = header(NOW, ts_type=ts_type)
    assert impl.check_packet(data, NOW, W) == impl.MALFORMED
    assert impl.parse_timestamp(data) is None


@pytest.mark.parametrize("reserved", [1, 0xFF])
def test_reserved_is_ignored(impl, reserved):
    assert impl.check_packet(header(NOW, reserved=reserved), NOW, W) == impl.FRESH


@pytest.mark.parametrize("nh", [0, 4, 17, 41, 255])
def test_next_header_is_not_judged(impl, nh):
    assert impl.check_packet(header(NOW + W + 1, nh=nh), NOW, W) == impl.TOO_NEW


def test_header_at_offset(impl):
    prefix = bytes(range(20))  # e.g. the outer IPv4 header
    data = prefix + header(NOW - W - 1)
    assert impl.check_packet(data, NOW, W, offset=20) == impl.TOO_OLD
    assert impl.check_packet(data, NOW, W, 20) == impl.TOO_OLD
    assert impl.parse_timestamp(data, 20) == NOW - W - 1
    # Read at the wrong place, the same bytes are not a D3P header.
    assert impl.check_packet(data, NOW, W) == impl.MALFORMED


@pytest.mark.parametrize("offset", [21, 31, 32, 33, 1000, 2 ** 63, U64_MAX, 2 ** 64, 2 ** 100])
def test_buffer_shorter_than_offset_is_malformed(impl, offset):
    data = bytes(20) + header(NOW)  # 32 octets
    assert impl.check_packet(data, NOW, W, offset) == impl.MALFORMED
    assert impl.parse_timestamp(data, offset) is None


def test_empty_buffer(impl):
    assert impl.check_packet(b"", NOW, W) == impl.MALFORMED
    assert impl.check_packet(bytearray(), NOW, W, 0) == impl.MALFORMED


@pytest.mark.parametrize("make", [
    bytes, bytearray, memoryview,
    lambda b: array.array("B", b),
    lambda b: np.frombuffer(b, dtype=np.uint8).copy(),
    lambda b: memoryview(bytes(7) + b)[7:],  # a zero-copy slice not at offset 0
    lambda b: memoryview(bytearray(b)).cast("B", (len(b) // 4, 4)),  # 2-D view
], ids=["bytes", "bytearray", "memoryview", "array", "numpy", "slice", "2-D"])
def test_bytes_like_inputs(impl, make):
    data = header(NOW + W + 1) + bytes(4)
    assert impl.check_packet(make(data), NOW, W) == impl.TOO_NEW
    assert impl.parse_timestamp(make(data)) == NOW + W + 1


def test_wide_item_buffer_counts_octets(impl):
    # A numpy uint32 array of 4 items is 16 octets: the header fits.
    data = np.frombuffer(header(NOW) + bytes(4), dtype=np.uint32).copy()
    assert impl.check_packet(data, NOW, W) == impl.FRESH
    # The offset counts octets too, not items.
    shifted = np.frombuffer(bytes(4) + header(NOW), dtype=np.uint32).copy()
    assert impl.check_packet(memoryview(shifted), NOW, W, 4) == impl.FRESH
    assert impl.check_packet(memoryview(shifted), NOW, W, 1) == impl.MALFORMED


@pytest.mark.parametrize("bad", ["0403", 12, None, 1.5, [4, 3, 1, 0], object()],
                         ids=["str", "int", "None", "float", "list", "object"])
def test_wrong_buffer_type_is_type_error(impl, bad):
    with pytest.raises(TypeError, match="bytes-like"):
        impl.check_packet(bad, NOW, W)
    with pytest.raises(TypeError, match="bytes-like"):
        impl.parse_timestamp(bad)


def test_non_contiguous_buffer_is_value_error(impl):
    strided = memoryview(header(NOW) * 2)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        impl.check_packet(strided, NOW, W)
    column = np.zeros((16, 4), dtype=np.uint8)[:, 0]
    with pytest.raises(ValueError, match="contiguous"):
        impl.check_packet(column, NOW, W)


@pytest.mark.parametrize("name", ["timestamp_ms", "now_ms", "window_ms"])
@pytest.mark.parametrize("bad, error", [
    (-1, ValueError), (2 ** 64, ValueError), (-(2 ** 70), ValueError),
    (1.0, TypeError), ("5", TypeError), (None, TypeError), (decimal.Decimal(5), TypeError),
])
def test_bad_integer_arguments(impl, name, bad, error):
    args = {"timestamp_ms": NOW, "now_ms": NOW, "window_ms": W}
    args[name] = bad
    with pytest.raises(error, match=name):
        impl.verdict(args["timestamp_ms"], args["now_ms"], args["window_ms"])
    if name != "timestamp_ms":
        with pytest.raises(error, match=name):
            impl.check_packet(header(NOW), args["now_ms"], args["window_ms"])
        with pytest.raises(error, match=name):
            impl.check_batch(array.array("Q", [NOW]), args["now_ms"], args["window_ms"])


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.0, TypeError), ("0", TypeError),
                                        (None, TypeError)])
def test_bad_offset(impl, bad, error):
    with pytest.raises(error, match="offset"):
        impl.check_packet(header(NOW), NOW, W, bad)
    with pytest.raises(error, match="offset"):
        impl.parse_timestamp(header(NOW), bad)


@pytest.mark.parametrize("args, error, match", [
    (("str", -1, -1, -1), TypeError, "bytes-like"),
    ((b"", -1, "W", -1), ValueError, "now_ms"),
    ((b"", 0, -1, "offset"), ValueError, "window_ms"),
    ((bytearray(), 0, 0, 1.5), TypeError, "offset"),
])
def test_first_bad_argument_is_reported(impl, args, error, match):
    # Both implementations check in the order data, now_ms, window_ms, offset.
    with pytest.raises(error, match=match):
        impl.check_packet(*args)


def test_integer_like_arguments_are_accepted(impl):
    assert impl.verdict(np.uint64(NOW), np.int64(NOW - W - 1), np.uint32(W)) == impl.TOO_NEW
    assert impl.verdict(True, False, 0) == impl.TOO_NEW
    assert impl.check_packet(header(NOW), np.uint64(NOW), np.uint16(0), np.int8(0)) == impl.FRESH


# -- check_batch ------------------------------------------------------------------------

def _sample_timestamps():
    values = [NOW + d for d in (-W - 1, -W, -1, 0, 1, W, W + 1, -10 ** 9, 10 ** 9)]
    return values + [0, U64_MAX, 2 ** 63, 2 ** 63 - 1]


@pytest.mark.parametrize("make", [
    lambda v: array.array("Q", v),
    lambda v: np.array(v, dtype=np.uint64),
    lambda v: memoryview(array.array("Q", v)),
    lambda v: memoryview(struct.pack("=%dQ" % len(v), *v)).cast("Q"),
    lambda v: memoryview(np.array(v, dtype=np.uint64).tobytes()).cast("B").cast("L"),
], ids=["array-Q", "numpy-uint64", "memoryview", "bytes-cast-Q", "format-L"])
def test_check_batch_matches_rule(impl, make):
    values = _sample_timestamps()
    out = bytearray(len(values))
    counts = impl.check_batch(make(values), NOW, W, verdicts=out)
    expected = [expected_verdict(t, NOW, W) for t in values]
    assert list(out) == expected
    assert counts == (expected.count(0), expected.count(1), expected.count(2), 0)
    assert counts.fresh == expected.count(0) and counts.malformed == 0
    assert impl.check_batch(make(values), NOW, W) == counts


def test_check_batch_does_not_accumulate(impl):
    values = array.array("Q", _sample_timestamps())
    assert impl.check_batch(values, NOW, W) == impl.check_batch(values, NOW, W)


def test_check_batch_empty(impl):
    assert impl.check_batch(array.array("Q"), NOW, W) == (0, 0, 0, 0)
    assert impl.check_batch(np.zeros(0, np.uint64), NOW, W, bytearray()) == (0, 0, 0, 0)


def test_check_batch_numpy_verdicts_and_2d(impl):
    values = np.array(_sample_timestamps() * 2, dtype=np.uint64).reshape(2, -1)
    out = np.full(values.size, 9, dtype=np.uint8)
    counts = impl.check_batch(values, NOW, W, out)
    expected = [expected_verdict(int(t), NOW, W) for t in values.ravel()]
    assert out.tolist() == expected
    assert sum(counts) == values.size


def test_check_batch_misaligned_buffer(impl):
    values = _sample_timestamps()
    raw = bytearray(1 + 8 * len(values))
    raw[1:] = struct.pack("=%dQ" % len(values), *values)
    misaligned = memoryview(raw)[1:].cast("Q")
    out = bytearray(len(values))
    impl.check_batch(misaligned, NOW, W, out)
    assert list(out) == [expected_verdict(t, NOW, W) for t in values]


@pytest.mark.parametrize("bad", [
    np.zeros(4, np.int64), np.zeros(4, np.float64), np.zeros(4, np.uint32), b"\x00" * 32,
    bytearray(32), array.array("q", [1])], ids=["int64", "float64", "uint32", "bytes",
                                                "bytearray", "array-q"])
def test_check_batch_rejects_non_u64_buffers(impl, bad):
    with pytest.raises(TypeError, match="unsigned 64-bit"):
        impl.check_batch(bad, NOW, W)


@pytest.mark.parametrize("bad", [[1, 2, 3], "abc", None, 5], ids=["list", "str", "None", "int"])
def test_check_batch_rejects_non_buffers(impl, bad):
    with pytest.raises(TypeError, match="timestamps"):
        impl.check_batch(bad, NOW, W)


def test_check_batch_rejects_foreign_byte_order(impl):
    other = ">u8" if sys.byteorder == "little" else "<u8"
    with pytest.raises(ValueError, match="byte order"):
        impl.check_batch(np.zeros(4, dtype=other), NOW, W)


def test_check_batch_rejects_non_contiguous(impl):
    with pytest.raises(ValueError, match="contiguous"):
        impl.check_batch(np.zeros(8, np.uint64)[::2], NOW, W)


@pytest.mark.parametrize("bad, error, match", [
    (bytearray(3), ValueError, "holds 3 items for 4"),
    (bytearray(5), ValueError, "holds 5 items for 4"),
    (bytes(4), TypeError, "writable"),
    (np.zeros(4, np.uint16), TypeError, "single octets"),
    (np.zeros(8, np.uint8)[::2], ValueError, "contiguous"),
    ("abcd", TypeError, "verdicts"),
], ids=["short", "long", "read-only", "uint16", "strided", "str"])
def test_check_batch_bad_verdicts_buffer(impl, bad, error, match):
    with pytest.raises(error, match=match):
        impl.check_batch(array.array("Q", [NOW] * 4), NOW, W, bad)


# -- both implementations agree on random inputs ----------------------------------------

u64 = st.integers(0, U64_MAX)
# Timestamps near the window edges are where an off-by-one would hide.
near_edges = st.builds(lambda now, w, d: (max(0, min(U64_MAX, now + d)), now, w),
                       u64, st.integers(0, 2 ** 40), st.integers(-(2 ** 41), 2 ** 41))
edge_offsets = st.builds(lambda now, w, sign, k: (max(0, min(U64_MAX, now + sign * (w + k))),
                                                   now, w),
                         u64, st.one_of(st.integers(0, 10 ** 6), u64),
                         st.sampled_from([-1, 1]), st.integers(-1, 1))
triples = st.one_of(st.tuples(u64, u64, u64), near_edges, edge_offsets)


@settings(max_examples=500, deadline=None)
@given(triples)
def test_c_and_python_agree_on_verdict(c_impl, pure, triple):
    expected = expected_verdict(*triple)
    assert c_impl.verdict(*triple) == expected
    assert pure.verdict(*triple) == expected


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=48), offset=st.integers(0, 50), now=u64, window=u64)
def test_c_and_python_agree_on_random_buffers(c_impl, pure, data, offset, now, window):
    assert c_impl.check_packet(data, now, window, offset) == pure.check_packet(
        data, now, window, offset)
    assert c_impl.parse_timestamp(data, offset) == pure.parse_timestamp(data, offset)


@settings(max_examples=300, deadline=None)
@given(timestamp=u64, now=u64, window=u64, header_words=st.integers(0, 8),
       ts_type=st.integers(0, 3), size=st.integers(0, 40))
def test_c_and_python_agree_on_near_valid_headers(c_impl, pure, timestamp, now, window,
                                                  header_words, ts_type, size):
    data = (header(timestamp, header_words=header_words, ts_type=ts_type) + bytes(28))[:size]
    verdict = c_impl.check_packet(data, now, window)
    assert verdict == pure.check_packet(data, now, window)
    valid = header_words >= 3 and ts_type == 1 and size >= max(12, 4 * header_words)
    assert verdict == (expected_verdict(timestamp, now, window) if valid else 3)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(u64, max_size=64), now=u64, window=u64)
def test_c_and_python_agree_on_batches(c_impl, pure, values, now, window):
    out_c, out_py = bytearray(len(values)), bytearray(len(values))
    counts = c_impl.check_batch(array.array("Q", values), now, window, out_c)
    assert counts == pure.check_batch(array.array("Q", values), now, window, out_py)
    assert out_c == out_py
    assert list(out_c) == [expected_verdict(t, now, window) for t in values]


def _outcome(function, *args):
    """The verdict, or the error type and message: never any other exception."""
    try:
        return "ok", function(*args)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


anything = st.one_of(st.integers(-(2 ** 65), 2 ** 65), u64, st.floats(), st.none(),
                     st.booleans(), st.text(max_size=3), st.binary(max_size=3))
buffers = st.one_of(st.binary(max_size=30), st.binary(max_size=30).map(bytearray),
                    st.text(max_size=3), st.integers(), st.none(),
                    st.lists(u64, max_size=5).map(lambda v: array.array("Q", v)),
                    st.lists(st.integers(-5, 5), max_size=5).map(lambda v: array.array("q", v)))


@settings(max_examples=500, deadline=None)
@given(data=buffers, now=anything, window=anything, offset=anything)
def test_c_and_python_fail_alike_on_bad_arguments(c_impl, pure, data, now, window, offset):
    assert (_outcome(c_impl.check_packet, data, now, window, offset)
            == _outcome(pure.check_packet, data, now, window, offset))
    assert (_outcome(c_impl.parse_timestamp, data, offset)
            == _outcome(pure.parse_timestamp, data, offset))
    assert _outcome(c_impl.verdict, offset, now, window) == _outcome(pure.verdict, offset, now,
                                                                     window)
    assert (_outcome(c_impl.check_batch, data, now, window)
            == _outcome(pure.check_batch, data, now, window))


def test_c_and_python_agree_on_a_large_numpy_batch(c_impl, pure):
    rng = np.random.default_rng(20261204)
    values = rng.integers(NOW - 3 * W, NOW + 3 * W, size=20000, dtype=np.uint64)
    out_c = np.empty(values.size, np.uint8)
    out_py = np.empty(values.size, np.uint8)
    assert c_impl.check_batch(values, NOW, W, out_c) == pure.check_batch(values, NOW, W, out_py)
    assert np.array_equal(out_c, out_py)
    delta = np.int64(NOW) - values.astype(np.int64)
    assert np.array_equal(out_c == 1, delta > W) and np.array_equal(out_c == 2, delta < -W)


# -- check_packet as a CPython builtin (d3p_fast._d3p_single) ----------------------------

@pytest.fixture(scope="module")
def single(c_impl):
    """The _d3p_single module; under CI a build without it fails the run."""
    return _import_built("d3p_fast._d3p_single", "d3p_fast._d3p_single")


def test_c_check_packet_is_the_single_builtin(c_impl, single):
    # No Python frame between the caller and the C check.
    assert isinstance(single.check_packet, types.BuiltinFunctionType)
    assert c_impl.check_packet is single.check_packet
    assert c_impl.check_packet is not c_impl.check_packet_cffi
    assert c_impl.CHECK_PACKET_IMPLEMENTATION == "cpython"
    assert single.D3P_FAST_ABI == c_impl.COMPILED_ABI
    import d3p_fast
    if d3p_fast.IMPLEMENTATION == "c":
        assert d3p_fast.check_packet is single.check_packet
        assert d3p_fast.CHECK_PACKET_IMPLEMENTATION == "cpython"


class _BytesSubclass(bytes):
    pass


# The builtin's fast path takes exact bytes and simple buffers with exact ints;
# everything else below goes through its general path.
packet_data = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.binary(max_size=40).map(memoryview),
    st.binary(max_size=40).map(_BytesSubclass),
    st.binary(max_size=40).map(lambda b: memoryview(b + b)[::2]),  # strided: ValueError
    st.binary(max_size=40).map(lambda b: np.frombuffer(b[:len(b) // 4 * 4], np.uint32)),
    st.lists(u64, max_size=4).map(lambda v: array.array("Q", v)),
    st.text(max_size=3), st.none(), st.integers(-3, 3))
with_headers = st.builds(
    lambda timestamp, words, prefix, suffix: prefix + header(timestamp, header_words=words)
    + suffix, u64, st.integers(0, 5), st.binary(max_size=6), st.binary(max_size=12))
plain_u64 = st.one_of(u64, st.integers(0, 2 ** 16), st.sampled_from([0, 1, 2 ** 63, U64_MAX]))
int_arguments = st.one_of(
    plain_u64, plain_u64, st.booleans(), st.integers(-(2 ** 70), -1),
    st.integers(2 ** 64, 2 ** 70), u64.map(np.uint64), st.integers(0, 127).map(np.int8),
    st.integers(-5, -1).map(np.int64), st.floats(allow_nan=False), st.none(),
    st.just("5"), st.just(decimal.Decimal(5)))
offsets = st.one_of(st.integers(0, 48), int_arguments)


def _outcomes(call):
    """The outcome of *call* on the builtin, the cffi wrapper and the pure twin."""
    c_module = importlib.import_module("d3p_fast._c")
    pure = importlib.import_module("d3p_fast._pure")
    return [_outcome(call, function) for function in (
        c_module.check_packet, c_module.check_packet_cffi, pure.check_packet)]


@settings(max_examples=800, deadline=None)
@given(data=st.one_of(packet_data, with_headers, with_headers.map(bytearray)),
       now=int_arguments, window=int_arguments, offset=offsets,
       shape=st.sampled_from(["absent", "positional", "keyword", "all keywords"]))
def test_builtin_cffi_wrapper_and_python_agree(single, data, now, window, offset, shape):
    def call(function):
        if shape == "absent":
            return function(data, now, window)
        if shape == "positional":
            return function(data, now, window, offset)
        if shape == "keyword":
            return function(data, now, window, offset=offset)
        return function(offset=offset, window_ms=window, now_ms=now, data=data)

    builtin, cffi_wrapper, python = _outcomes(call)
    assert builtin == cffi_wrapper == python
    if builtin[0] == "ok" and shape == "absent" and isinstance(data, bytes):
        # Only for plain arguments can the rule itself be the oracle.
        if all(type(v) is int and 0 <= v <= U64_MAX for v in (now, window)):
            stamp = python_parse_timestamp(bytes(data))
            assert builtin[1] == (3 if stamp is None else expected_verdict(stamp, now, window))


def python_parse_timestamp(data):
    """The header's timestamp, read field by field as in DECISIONS.md §3, or None."""
    if len(data) < 12 or data[1] < 3 or data[1] * 4 > len(data) or data[2] != 1:
        return None
    return struct.unpack("!Q", data[4:12])[0]


@pytest.mark.parametrize("args, kwargs", [
    ((), {}),
    ((b"",), {}),
    ((b"", NOW), {}),
    ((b"", NOW, W, 0, 0), {}),
    ((b"", NOW, W, 0), {"offset": 0}),
    ((b"", NOW, W), {"offset": 0, "extra": 1}),
    ((b"", NOW, W), {"ofset": 0}),
    ((b"", NOW), {"window": W}),
    ((b"",), {"now_ms": NOW, "window_ms": W}),
    ((), {"data": header(NOW), "now_ms": NOW, "window_ms": W}),
    ((header(NOW),), {"window_ms": W, "now_ms": NOW, "offset": 0}),
    ((header(NOW), NOW), {"window_ms": W}),
], ids=["no-args", "one", "two", "five", "offset-twice", "unknown-kw", "misspelt-offset",
        "wrong-kw-name", "kw-ints", "all-kw", "kw-order", "kw-window"])
def test_builtin_call_shapes_behave_like_python(single, args, kwargs):
    # Keyword misuse and wrong arity: the same TypeError text, or the same verdict.
    builtin, cffi_wrapper, python = _outcomes(lambda function: function(*args, **kwargs))
    assert builtin == cffi_wrapper == python


def test_builtin_first_call_may_be_a_general_one():
    # The general path is looked up on first use, also when _d3p_single is
    # imported before d3p_fast._c (it must not depend on import order).
    code = """
        from d3p_fast import _d3p_single
        try:
            _d3p_single.check_packet("0403", 1, 2)
        except TypeError as exc:
            print(exc)
        print(_d3p_single.check_packet(bytes(12), 1, 2, offset=True))
    """
    result = _run_python(code)
    if "No module named 'd3p_fast._d3p_single'" in result.stderr and not _strict():
        pytest.skip("d3p_fast._d3p_single not built")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["data must be a bytes-like object, not str", "3"]


@pytest.mark.parametrize("now", [NOW, True], ids=["fast-path", "general-path"])
def test_builtin_releases_the_buffer(single, now):
    # A bytearray with an export cannot be resized; a memoryview with one
    # cannot be released: both raise BufferError if the builtin leaks it.
    data = bytearray(header(NOW))
    assert single.check_packet(data, now, U64_MAX) == 0
    data.extend(b"\x00")
    view = memoryview(bytearray(header(NOW)))
    assert single.check_packet(view, now, U64_MAX, offset=0) == 0
    view.release()


@pytest.mark.parametrize("args", [
    (header(NOW), NOW, W),                     # fast path, bytes
    (bytearray(header(NOW)), NOW, W, 0),       # fast path, buffer
    (header(NOW), np.uint64(NOW), W),          # general path, verdict
    (header(NOW), NOW, -1),                    # general path, ValueError
], ids=["bytes", "bytearray", "numpy-int", "error"])
def test_builtin_keeps_no_references_and_allocates_nothing(single, args):
    def run(calls):
        for _ in range(calls):
            try:
                single.check_packet(*args)
            except ValueError:
                pass

    # Small ints are shared by the whole interpreter: their counts move anyway.
    watched = [a for a in args if not (type(a) is int and -5 <= a <= 256)]
    run(100)  # warm caches (the general path is looked up once)
    refcounts = [sys.getrefcount(a) for a in watched]
    blocks = sys.getallocatedblocks()
    run(20000)
    # A leaked reference or object per call would show as 20000 here.
    assert [sys.getrefcount(a) for a in watched] == refcounts
    assert sys.getallocatedblocks() - blocks < 100


# -- choosing the implementation --------------------------------------------------------

def _run_python(code, **env):
    full_env = dict(os.environ)
    for key in ("D3P_FAST_PUREPYTHON", "D3P_FAST_REQUIRE_C"):
        full_env.pop(key, None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120)


_REPORT = """
    import warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        {prelude}
        import d3p_fast
        import d3p_fast  # a second import must not warn again
    print(d3p_fast.IMPLEMENTATION, len(caught))
    for w in caught:
        print(w.category.__name__, w.message)
"""


_CHECK_PACKET_REPORT = """
    import warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        {prelude}
        import d3p_fast
    print(d3p_fast.IMPLEMENTATION, d3p_fast.CHECK_PACKET_IMPLEMENTATION, len(caught),
          type(d3p_fast.check_packet).__name__)
"""


def test_environment_forces_pure_python():
    result = _run_python(_REPORT.format(prelude="pass"), D3P_FAST_PUREPYTHON="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["python", "0"]
    result = _run_python(_CHECK_PACKET_REPORT.format(prelude="pass"), D3P_FAST_PUREPYTHON="1")
    assert result.stdout.split() == ["python", "python", "0", "function"]


def test_single_builtin_is_used_when_built(single):
    result = _run_python(_CHECK_PACKET_REPORT.format(prelude="pass"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["c", "cpython", "0", "builtin_function_or_method"]


def test_missing_single_builtin_uses_the_cffi_wrapper_silently(c_impl):
    prelude = "import sys; sys.modules['d3p_fast._d3p_single'] = None"
    for env in ({}, {"D3P_FAST_REQUIRE_C": "1"}):
        result = _run_python(_CHECK_PACKET_REPORT.format(prelude=prelude), **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["c", "cffi", "0", "function"]


def test_stale_single_builtin_is_not_used(c_impl):
    # compiled from another d3p_window.h: its check_packet may mean something else
    prelude = ("import sys, types; fake = types.ModuleType('d3p_fast._d3p_single'); "
               "fake.D3P_FAST_ABI = -7; fake.check_packet = len; "
               "sys.modules['d3p_fast._d3p_single'] = fake")
    result = _run_python(_CHECK_PACKET_REPORT.format(prelude=prelude))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["c", "cffi", "0", "function"]


def test_missing_c_extension_means_python_check_packet():
    prelude = "import sys; sys.modules['d3p_fast._d3p_fast'] = None"
    result = _run_python(_CHECK_PACKET_REPORT.format(prelude=prelude))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "python", "1", "function"]


def test_c_extension_is_used_when_built(c_impl):
    result = _run_python(_REPORT.format(prelude="pass"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["c", "0"]


def test_missing_extension_falls_back_with_one_warning():
    prelude = "import sys; sys.modules['d3p_fast._d3p_fast'] = None"
    result = _run_python(_REPORT.format(prelude=prelude))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "python 1"
    assert lines[1].startswith("RuntimeWarning") and "pure-Python" in lines[1]


def test_missing_extension_is_fatal_when_c_is_required():
    prelude = "import sys; sys.modules['d3p_fast._d3p_fast'] = None"
    result = _run_python(_REPORT.format(prelude=prelude), D3P_FAST_REQUIRE_C="1")
    assert result.returncode != 0
    assert "ImportError" in result.stderr


_FAKE_STALE_EXTENSION = """\
import sys, types, cffi
fake = types.ModuleType('d3p_fast._d3p_fast')
fake.ffi = cffi.FFI()
fake.lib = types.SimpleNamespace(D3P_FAST_ABI=-7, d3p_verdict=None, d3p_check_packet=None,
                                 d3p_check_batch=None, d3p_noop=None)
sys.modules['d3p_fast._d3p_fast'] = fake"""


def test_extension_without_abi_constant_is_refused():
    # e.g. a module compiled before d3p_window.h existed
    prelude = (_FAKE_STALE_EXTENSION.replace("D3P_FAST_ABI=-7, ", "")
               .replace("\n", "\n        "))
    result = _run_python(_REPORT.format(prelude=prelude))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "python 1"
    assert "stale" in lines[1] and "D3P_FAST_ABI" in lines[1]


def test_stale_extension_abi_is_refused():
    prelude = _FAKE_STALE_EXTENSION.replace("\n", "\n        ")
    result = _run_python(_REPORT.format(prelude=prelude))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "python 1"
    assert "stale" in lines[1] and "-7" in lines[1]
    result = _run_python(_REPORT.format(prelude=prelude), D3P_FAST_REQUIRE_C="1")
    assert result.returncode != 0 and "stale" in result.stderr


def test_public_api_is_the_selected_implementation():
    import d3p_fast
    impl = importlib.import_module("d3p_fast._c" if d3p_fast.IMPLEMENTATION == "c"
                                   else "d3p_fast._pure")
    for name in ("verdict", "check_packet", "parse_timestamp", "check_batch"):
        assert getattr(d3p_fast, name) is getattr(impl, name)
    assert d3p_fast.check_packet(header(NOW), NOW, W) == d3p_fast.FRESH
