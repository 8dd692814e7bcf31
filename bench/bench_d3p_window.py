#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Benchmark of d3p_fast: the D3P window check in C against what a user would write instead.

Run from the project root after building the extension:

    python bench/bench_d3p_window.py [--count 10000000] [--calls 1000000] [--single-only]

It prints, measured in this one run (best of several repeats, time.perf_counter):

1. check_batch on COUNT timestamps (C, one fused pass) against
   - the pure-Python loop (d3p_fast's twin; timed on a 1M subset and scaled,
     as the output says),
   - the numpy expressions a user would write: the delta form of DECISIONS.md §3
     (delta = now - ts as int64, two compares) and the faster bounds form
     (ts < now - W, ts > now + W on uint64);
   and the same with a per-timestamp verdict array.
2. One d3p_fast.check_packet call (the vectorcall builtin of d3p_fast._d3p_single)
   against a cffi call to the empty C function d3p_noop(), in the same run, and
   beside it, for honesty, the cffi wrapper check_packet_cffi (what a build
   without _d3p_single runs), lib.d3p_check_packet called directly, and
   d3p_noop_check_packet(), an empty function with check_packet's six
   arguments (the floor for any cffi call that passes a packet).

Every alternative's counts are checked equal to the C counts before timing.
Targets (issue 4): batch >= 100x the Python loop and >= 2x numpy; single check
<= 1.5x the empty call.  The script exits 0 either way and says which were met.

Why check_packet is a CPython builtin and not a cffi call: cffi calls a C
function that takes two or more arguments through METH_VARARGS (a tuple,
PyArg_UnpackTuple) and converts each argument, so an *empty* function with
check_packet's arguments already costs about 3x the empty zero-argument call,
while the parse and window check themselves cost a few ns.  The builtin
(d3p_fast/_single/d3p_single.c) takes its arguments as a C array (METH_FASTCALL)
and runs the same d3p_check_packet_inline() with no Python frame in between.
"""
import argparse
import os
import platform
import struct
import sys
import time
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from d3p_fast import _pure  # noqa: E402

try:
    from d3p_fast import _c
except ImportError as exc:  # pragma: no cover - a benchmark of C needs C
    sys.exit("the d3p_fast C extension is not built (%s): python d3p_fast/_build.py" % exc)

NOW = 1_764_878_000_000
WINDOW = 5000
PYTHON_SUBSET = 1_000_000


def best_of(function, repeat):
    """Smallest wall time of *repeat* calls of *function* (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def make_timestamps(count):
    # A third fresh, a third too old, a third too new: the compares cannot be
    # predicted, as with real clock skew and delay.
    rng = np.random.default_rng(20261204)
    offsets = rng.integers(-3 * WINDOW, 3 * WINDOW, size=count)
    return (np.int64(NOW) + offsets).astype(np.uint64)


def numpy_delta_counts(timestamps, now, window):
    """The window rule as written in DECISIONS.md §3, in numpy (int64 delta)."""
    delta = np.int64(now) - timestamps.astype(np.int64)
    too_old = int(np.count_nonzero(delta > window))
    too_new = int(np.count_nonzero(delta < -window))
    return timestamps.size - too_old - too_new, too_old, too_new


def numpy_bounds_counts(timestamps, now, window):
    """The fastest numpy form: compare the uint64 timestamps with now -/+ W."""
    too_old = int(np.count_nonzero(timestamps < np.uint64(now - window)))
    too_new = int(np.count_nonzero(timestamps > np.uint64(now + window)))
    return timestamps.size - too_old - too_new, too_old, too_new


def numpy_bounds_verdicts(timestamps, now, window):
    """numpy verdict array (0 fresh, 1 too old, 2 too new) plus counts."""
    verdicts = (timestamps < np.uint64(now - window)).view(np.uint8)
    verdicts += (timestamps > np.uint64(now + window)).view(np.uint8) * np.uint8(2)
    counts = np.bincount(verdicts, minlength=3)
    return verdicts, (int(counts[0]), int(counts[1]), int(counts[2]))


def ratio_line(label, slow, fast, target=None):
    text = "  %-46s %8.1fx" % (label, slow / fast)
    if target is not None:
        text += "   (target >= %gx: %s)" % (target, "met" if slow / fast >= target else "NOT met")
    print(text)


def bench_batch(count, repeat):
    timestamps = make_timestamps(count)
    subset = timestamps[:min(PYTHON_SUBSET, count)]
    verdicts = np.empty(count, np.uint8)

    c_counts = tuple(_c.check_batch(timestamps, NOW, WINDOW))[:3]
    assert numpy_delta_counts(timestamps, NOW, WINDOW) == c_counts
    assert numpy_bounds_counts(timestamps, NOW, WINDOW) == c_counts
    _c.check_batch(timestamps, NOW, WINDOW, verdicts)
    np_verdicts, np_counts = numpy_bounds_verdicts(timestamps, NOW, WINDOW)
    assert np_counts == c_counts and np.array_equal(np_verdicts, verdicts)
    assert (tuple(_pure.check_batch(subset, NOW, WINDOW))
            == tuple(_c.check_batch(subset, NOW, WINDOW)))

    c_time = best_of(lambda: _c.check_batch(timestamps, NOW, WINDOW), repeat)
    c_verdict_time = best_of(lambda: _c.check_batch(timestamps, NOW, WINDOW, verdicts), repeat)
    delta_time = best_of(lambda: numpy_delta_counts(timestamps, NOW, WINDOW), repeat)
    bounds_time = best_of(lambda: numpy_bounds_counts(timestamps, NOW, WINDOW), repeat)
    np_verdict_time = best_of(lambda: numpy_bounds_verdicts(timestamps, NOW, WINDOW), repeat)
    python_time = best_of(lambda: _pure.check_batch(subset, NOW, WINDOW), 1)
    python_scaled = python_time * count / subset.size

    print("check_batch over %d timestamps (counts %s fresh/old/new)" % (count, c_counts))
    print("  C check_batch, counts only          %10.2f ms  (%.2f ns/timestamp)"
          % (c_time * 1e3, c_time / count * 1e9))
    print("  C check_batch, with verdict array   %10.2f ms" % (c_verdict_time * 1e3))
    print("  numpy, delta form (int64)           %10.2f ms" % (delta_time * 1e3))
    print("  numpy, bounds form (uint64)         %10.2f ms" % (bounds_time * 1e3))
    print("  numpy, bounds form + verdict array  %10.2f ms" % (np_verdict_time * 1e3))
    print("  pure-Python loop (d3p_fast twin)    %10.2f ms  (timed on %d, scaled x%g)"
          % (python_scaled * 1e3, subset.size, count / subset.size))
    ratio_line("C vs pure-Python loop", python_scaled, c_time, 100)
    ratio_line("C vs numpy delta form", delta_time, c_time, 2)
    ratio_line("C vs numpy bounds form (fastest numpy)", bounds_time, c_time, 2)
    ratio_line("C vs numpy, both with a verdict array", np_verdict_time, c_verdict_time, 2)


def bench_single(calls, repeat):
    lib, ffi = _c.lib, _c.ffi
    packet = bytes([4, 3, 1, 0]) + struct.pack("!Q", NOW - 10) + bytes(28)  # D3P + inner IPv4
    receive_buffer = bytearray(packet)
    for check in (_c.check_packet, _c.check_packet_cffi, _pure.check_packet):
        assert check(packet, NOW, WINDOW) == _c.FRESH
        assert check(receive_buffer, NOW, WINDOW) == _c.FRESH
        assert check(packet, NOW, WINDOW, offset=0) == _c.FRESH
    names = {
        "noop": lib.d3p_noop, "floor": lib.d3p_noop_check_packet, "raw": lib.d3p_check_packet,
        "check_packet": _c.check_packet, "cffi_check_packet": _c.check_packet_cffi,
        "pure_check_packet": _pure.check_packet,
        "packet": packet, "buffer": receive_buffer, "size": len(packet), "NULL": ffi.NULL,
        "now": NOW, "window": WINDOW,
    }
    builtin = _c.CHECK_PACKET_IMPLEMENTATION == "cpython"
    kind = "builtin" if builtin else "NOT BUILT: cffi wrapper"
    cases = [
        ("empty", "empty cffi call: lib.d3p_noop()", "noop()"),
        ("floor", "empty 6-argument call: lib.d3p_noop_check_packet",
         "floor(packet, size, 0, now, window, NULL)"),
        ("raw", "lib.d3p_check_packet, called directly", "raw(packet, size, 0, now, window, NULL)"),
        ("bytes", "d3p_fast.check_packet(bytes, now, W) [%s]" % kind,
         "check_packet(packet, now, window)"),
        ("bytearray", "d3p_fast.check_packet(bytearray, now, W)",
         "check_packet(buffer, now, window)"),
        ("keyword", "d3p_fast.check_packet(bytes, now, W, offset=0)",
         "check_packet(packet, now, window, offset=0)"),
        ("cffi_bytes", "cffi wrapper check_packet_cffi(bytes, now, W)",
         "cffi_check_packet(packet, now, window)"),
        ("cffi_bytearray", "cffi wrapper check_packet_cffi(bytearray, now, W)",
         "cffi_check_packet(buffer, now, window)"),
        ("pure", "pure-Python check_packet(bytes, now, W)",
         "pure_check_packet(packet, now, window)"),
    ]
    print("\nsingle check (best of %d x %d calls, interleaved; check_packet is %s)"
          % (repeat, calls, _c.CHECK_PACKET_IMPLEMENTATION))
    # Interleaving the cases spreads any load from other processes over all of them.
    results = dict.fromkeys((key for key, _, _ in cases), float("inf"))
    for _ in range(repeat):
        for key, _, statement in cases:
            seconds = timeit.timeit(statement, globals=names, number=calls) / calls
            results[key] = min(results[key], seconds)
    for key, label, _ in cases:
        print("  %-58s %7.1f ns" % (label, results[key] * 1e9))
    empty, floor = results["empty"], results["floor"]
    print("  ratios to the empty cffi call (target for check_packet: <= 1.5x)")
    for key, label in (("bytes", "d3p_fast.check_packet(bytes)"),
                       ("bytearray", "d3p_fast.check_packet(bytearray)"),
                       ("keyword", "d3p_fast.check_packet(bytes, offset=0)"),
                       ("floor", "empty 6-argument cffi call (cffi conversion floor)"),
                       ("raw", "lib.d3p_check_packet"),
                       ("cffi_bytes", "cffi wrapper (bytes)"),
                       ("cffi_bytearray", "cffi wrapper (bytearray)")):
        line = "    %-54s %6.2fx" % (label, results[key] / empty)
        if key == "bytes":
            line += "   (target <= 1.5x: %s)" % ("met" if results[key] / empty <= 1.5
                                                  else "NOT met")
        print(line)
    print("  d3p_fast.check_packet(bytes) is %.1fx faster than the cffi wrapper, %.1fx faster "
          "than the empty 6-argument cffi call, %.1fx faster than pure Python"
          % (results["cffi_bytes"] / results["bytes"], floor / results["bytes"],
             results["pure"] / results["bytes"]))
    print("  lib.d3p_check_packet minus the empty 6-argument call: %+.1f ns (the parse and "
          "window check are lost in the call cost)" % ((results["raw"] - floor) * 1e9))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--single-only", action="store_true",
                        help="time only the single check_packet call")
    parser.add_argument("--count", type=int, default=10_000_000,
                        help="timestamps in the batch (default 10 million)")
    parser.add_argument("--calls", type=int, default=200_000,
                        help="calls per repeat of the single-check timings")
    parser.add_argument("--repeat", type=int, default=15, help="repeats; the best is kept")
    args = parser.parse_args()
    print("d3p_fast benchmark: Python %s, numpy %s, %s, %d CPUs"
          % (platform.python_version(), np.__version__, platform.machine(), os.cpu_count()))
    if not args.single_only:
        bench_batch(args.count, args.repeat)
    bench_single(args.calls, args.repeat)


if __name__ == "__main__":
    main()
