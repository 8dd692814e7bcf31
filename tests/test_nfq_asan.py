# SPDX-License-Identifier: GPL-2.0-only
"""The NFQUEUE enforcer's sans-io C code under AddressSanitizer and UBSan.

tests/nfq_asan_harness.c links d3p_fast/csrc/nfq_msg.c, nfq_packet.c,
nfq_verdict.c and d3p_window.c, built once per session with
-fsanitize=address,undefined in a temporary directory, and fuzzes the
netlink parsers, strip / stamp / enforce (IPv4, IPv6 with extension
headers, cut and padded packets) and the verdict batcher with buffers
malloc'd at exactly their length.  Besides memory safety it checks the
invariants listed in the harness (rewritten packets consistent, stamp then
strip is the identity, no FULL from an empty batcher).  Bounded: about 5 s
per million iterations here; the test runs two seeds of 600 000.
"""
import pytest

from asan import build_harness, run_harness

SOURCES = ["nfq_msg.c", "nfq_packet.c", "nfq_verdict.c", "d3p_window.c"]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    return build_harness(tmp_path_factory.mktemp("nfq-asan"), "nfq_asan",
                         "nfq_asan_harness.c", SOURCES)


def _run(binary, *args):
    return run_harness(binary, *args, timeout=120)


def test_asan_is_really_watching(harness):
    result = _run(harness, "canary")
    assert result.returncode == 86
    assert b"heap-buffer-overflow" in result.stderr


@pytest.mark.parametrize("seed", ["0x5eed2026", "0xd3b0a7"])
def test_fuzz_parsers_rewrites_and_batcher_without_report(harness, seed):
    result = _run(harness, "fuzz", seed, "600000")
    stderr = result.stderr.decode(errors="replace")
    stdout = result.stdout.decode(errors="replace")
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr, stderr
    assert result.returncode == 0, stdout + stderr
    # Every path was reached many times, or the run proves nothing.
    words = stdout.split()
    counts = dict(zip(words[2::2], map(int, words[3::2])))
    assert set(counts) == {"stripped", "stamped", "judged", "parsed", "batched"}
    assert min(counts.values()) > 10000, counts
