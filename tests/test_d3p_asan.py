"""The D3P C parser under AddressSanitizer (and UBSan).

tests/d3p_asan_harness.c links d3p_fast/csrc/d3p_window.c, built once per session
with -fsanitize=address,undefined in a temporary directory. Every buffer it
hands the parser is malloc'd at exactly its length, so any read past the end is
an ASan report and a failed run. The replayed cases are compared with the
pure-Python twin, so the sanitized build also answers correctly.
"""
import array
import random
import struct

import pytest

from d3p_fast import _pure
from asan import build_harness, run_harness

U64_MAX = 2 ** 64 - 1
NOW = 1_764_878_000_000

#: The batch loop's code paths (csrc/d3p_window.c): CPU clones as shipped, the
#: baseline vector code alone, and the scalar loop alone.
VARIANTS = {"clones": [], "baseline": ["-DD3P_CPU_CLONES="], "scalar": ["-DD3P_SCALAR_ONLY"]}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def harness(request, tmp_path_factory):
    return build_harness(tmp_path_factory.mktemp("asan"), "d3p_asan_" + request.param,
                         "d3p_asan_harness.c", ["d3p_window.c"], VARIANTS[request.param])


_run = run_harness


def _assert_clean(result):
    stderr = result.stderr.decode(errors="replace")
    assert "AddressSanitizer" not in stderr and "runtime error" not in stderr, stderr
    assert result.returncode == 0, stderr


def test_asan_is_really_watching(harness):
    # Without this, a harness built without the sanitizer would pass everything.
    result = _run(harness, "canary")
    assert result.returncode == 86
    assert b"heap-buffer-overflow" in result.stderr


def test_fuzz_random_buffers_without_report(harness):
    _assert_clean(_run(harness, "fuzz", "0x5eed2026", "200000"))


def _packet_case(data, offset, now, window):
    return (b"P" + struct.pack("<IQQQ", len(data), offset, now, window) + data)


def _batch_case(values, now, window):
    return (b"B" + struct.pack("<IQQ", len(values), now, window)
            + struct.pack("<%dQ" % len(values), *values))


def _header(timestamp, header_words=3, ts_type=1, extra=b""):
    return bytes([4, header_words, ts_type, 0]) + struct.pack("!Q", timestamp) + extra


def _structured_packets():
    full = _header(NOW) + bytes(8)
    for cut in range(len(full) + 1):  # every truncation, offset 0 and 3
        yield full[:cut], 0
        yield bytes(3) + full[:cut], 3
    for words in range(256):  # every Header Length, on a buffer that fits only 3 words
        yield _header(NOW, header_words=words), 0
        yield _header(NOW, header_words=words, extra=bytes(max(words * 4 - 12, 0))), 0
    for ts_type in range(256):
        yield _header(NOW, ts_type=ts_type), 0
    for offset in (12, 13, 20, 21, 1 << 32, 1 << 63, U64_MAX):  # past the end
        yield bytes(20), offset


def test_replay_matches_pure_python_without_report(harness):
    rng = random.Random(4)
    cases, expected = [], []
    for data, offset in _structured_packets():
        window = rng.choice([0, 5000, U64_MAX])
        now = rng.choice([NOW, 0, U64_MAX, NOW + 5001])
        cases.append(_packet_case(data, offset, now, window))
        expected.append((data, offset, now, window))
    for _ in range(3000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
        if len(data) >= 3 and rng.random() < 0.7:
            data = data[:1] + bytes([rng.randrange(0, 6), 1]) + data[3:]
        offset = rng.randrange(0, len(data) + 4)
        now, window = rng.getrandbits(64), rng.getrandbits(rng.randrange(1, 65))
        cases.append(_packet_case(data, offset, now, window))
        expected.append((data, offset, now, window))
    batches = []
    for size in list(range(0, 10)) + [1000]:
        now, window = rng.getrandbits(64), rng.getrandbits(rng.randrange(1, 65))
        values = [rng.choice([rng.getrandbits(64), now, (now + window) % 2 ** 64,
                              (now - window) % 2 ** 64]) for _ in range(size)]
        cases.append(_batch_case(values, now, window))
        batches.append((values, now, window))

    result = _run(harness, "replay", stdin=b"".join(cases))
    _assert_clean(result)
    lines = result.stdout.decode().splitlines()
    assert len(lines) == len(expected) + len(batches)

    for line, (data, offset, now, window) in zip(lines, expected):
        verdict = _pure.check_packet(data, now, window, offset)
        timestamp = _pure.parse_timestamp(data, offset)
        assert line == "P %d %d" % (verdict, timestamp or 0), (data.hex(), offset)
    for line, (values, now, window) in zip(lines[len(expected):], batches):
        out = bytearray(len(values))
        counts = _pure.check_batch(array.array("Q", values), now, window, out)
        assert line == "B %d %d %d %d %s" % (*counts, "".join(map(str, out)))

