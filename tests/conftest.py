"""Shared fixtures and the privileged-test policy.

Tests that need root, network namespaces and iptables are marked `privileged`.
For a user who is not root they skip with the reason. Under CI (CI=true, or
GDOI_REQUIRE_PRIVILEGED=1) a skipped privileged test fails the run, because CI runs
as root and must exercise them. The same holds for `tshark` oracle tests.
"""
import os
import pathlib
import shutil

import pytest

# Subprocesses (`python -m scapy_gdoi.cli ...`, `python -c ...`) must import the
# installed package, not the source tree in the working directory: after a plain
# `pip install .` the source tree has no compiled d3p_fast extension. Python 3.11+
# honours this; the tests' own imports never put the working directory on sys.path.
os.environ.setdefault("PYTHONSAFEPATH", "1")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
PCAPS = ROOT / "pcaps"
VECTORS = HERE / "vectors"


def strict_mode():
    return (os.environ.get("CI", "").lower() in ("1", "true", "yes")
            or os.environ.get("GDOI_REQUIRE_PRIVILEGED") == "1")


def privileged_skip_reason():
    """Why privileged tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables NFQUEUE)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return "needs the %r command (Debian packages iproute2, iptables)" % tool
    return None


_enforced_skips = []


def pytest_runtest_setup(item):
    if item.get_closest_marker("privileged"):
        reason = privileged_skip_reason()
        if reason:
            pytest.skip(reason)
    if item.get_closest_marker("tshark") and shutil.which("tshark") is None:
        pytest.skip("needs tshark (Debian package tshark)")


def pytest_runtest_logreport(report):
    if report.skipped and strict_mode():
        keywords = report.keywords
        if "privileged" in keywords or "tshark" in keywords:
            _enforced_skips.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _enforced_skips and strict_mode():
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _enforced_skips and strict_mode():
        terminalreporter.write_line(
            "FAILED: %d privileged/tshark test(s) were skipped under CI:" % len(_enforced_skips),
            red=True)
        for nodeid in _enforced_skips:
            terminalreporter.write_line("  " + nodeid, red=True)


@pytest.fixture(scope="session")
def pcaps_dir():
    return PCAPS


@pytest.fixture(scope="session")
def vectors_dir():
    return VECTORS
