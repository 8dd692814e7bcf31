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
import os
import shutil
import subprocess

import pytest

import d3p_fast

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(os.path.abspath(d3p_fast.__file__)), "csrc")
HARNESS = os.path.join(HERE, "nfq_asan_harness.c")
SOURCES = ["nfq_msg.c", "nfq_packet.c", "nfq_verdict.c", "d3p_window.c"]
SANITIZER_ENV = {
    # Leak checking needs ptrace, which containers often refuse.
    "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
}


def _strict():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        if _strict():
            pytest.fail("gcc is needed for the AddressSanitizer test")
        pytest.skip("needs gcc with AddressSanitizer (Debian package gcc)")
    binary = str(tmp_path_factory.mktemp("nfq-asan") / "nfq_asan")
    command = [gcc, "-std=gnu11", "-g", "-O1", "-fno-omit-frame-pointer",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
               "-Wall", "-Wextra", "-Werror", "-I", CSRC, HARNESS,
               *[os.path.join(CSRC, name) for name in SOURCES], "-o", binary]
    build = subprocess.run(command, capture_output=True, text=True)
    if build.returncode != 0:
        if "sanitize" in build.stderr and not _strict():
            pytest.skip("this gcc cannot build with -fsanitize=address: %s" % build.stderr)
        pytest.fail("harness build failed:\n%s" % build.stderr)
    return binary


def _run(binary, *args):
    env = dict(os.environ, **SANITIZER_ENV)
    return subprocess.run([binary, *args], capture_output=True, env=env, timeout=120)


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
