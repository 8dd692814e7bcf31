"""Build and run C test harnesses under AddressSanitizer and UBSan.

Shared by the D3P window and NFQUEUE sanitizer tests: the harness is compiled
once per module in a temporary directory against the C sources shipped with the
package under test (its package_data), i.e. the ones its extension was built from.
"""
import os
import shutil
import subprocess

import pytest

import d3p_fast
from conftest import strict_mode

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(os.path.abspath(d3p_fast.__file__)), "csrc")
SANITIZER_ENV = {
    # Leak checking is off: it needs ptrace, which containers often refuse; the
    # code under test allocates nothing and the harnesses free what they allocate.
    "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
}


def build_harness(directory, name, harness, sources, extra_flags=()):
    """Compile tests/*harness* with csrc/*sources* into *directory*/*name*.

    Skips without gcc or sanitizer support, except under CI, where it fails.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        if strict_mode():
            pytest.fail("gcc is needed for the AddressSanitizer tests")
        pytest.skip("needs gcc with AddressSanitizer (Debian package gcc)")
    binary = os.path.join(str(directory), name)
    command = [gcc, "-std=gnu11", "-g", "-O1", "-fno-omit-frame-pointer",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
               "-Wall", "-Wextra", "-Werror", *extra_flags, "-I", CSRC,
               os.path.join(HERE, harness), *[os.path.join(CSRC, s) for s in sources],
               "-o", binary]
    build = subprocess.run(command, capture_output=True, text=True)
    if build.returncode != 0:
        if "sanitize" in build.stderr and not strict_mode():
            pytest.skip("this gcc cannot build with -fsanitize=address: %s" % build.stderr)
        pytest.fail("harness build failed:\n%s" % build.stderr)
    return binary


def run_harness(binary, *args, stdin=b"", timeout=300):
    """Run a sanitized harness; sanitizer reports make it exit 86 (ASan) or 87 (UBSan)."""
    env = dict(os.environ, **SANITIZER_ENV)
    return subprocess.run([binary, *args], input=stdin, capture_output=True, env=env,
                          timeout=timeout)
