"""scapy-gdoi: Scapy layers, crypto and tooling for GDOI / GET VPN interoperability.

The `d3p_fast` C extension is built through cffi's out-of-line API mode
(`cffi_modules`). A machine without a working compiler still gets a working install:
the build failure is reported loudly and `d3p_fast` runs its pure-Python twin
(the markupsafe pattern). Set D3P_FAST_REQUIRE_C=1 to make a failed build fatal.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Turn a compiler failure into a pure-Python install with a banner."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated types here
            self._fallback(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc, ext.name)

    @staticmethod
    def _fallback(exc, name=None):
        if os.environ.get("D3P_FAST_REQUIRE_C") == "1":
            raise exc
        if name == "d3p_fast._d3p_single":
            # Only the check_packet builtin is missing: the cffi module still works.
            what, consequence = name, "d3p_fast.check_packet will use the slower cffi wrapper"
        else:
            what, consequence = ("the d3p_fast C extension",
                                 "d3p_fast will use its pure-Python implementation")
        sys.stderr.write(
            "\n" + "=" * 72 + "\n"
            "WARNING: %s could not be built (%s).\n"
            "%s.\n" % (what, exc, consequence)
            + "=" * 72 + "\n\n")


setup(
    name="scapy-gdoi",
    version="0.1.0",
    description="Scapy layers, crypto and tools for GDOI (RFC 6407), RFC 8263 ACKs and IP-D3P",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="GPL-2.0-only",
    python_requires=">=3.9",
    packages=["scapy_gdoi", "d3p_fast"],
    package_data={"d3p_fast": ["csrc/*.c", "csrc/*.h"]},
    install_requires=["scapy>=2.5", "cryptography>=3.4", "cffi>=1.15"],
    setup_requires=["cffi>=1.15"],
    extras_require={"test": ["pytest>=7", "hypothesis>=6", "numpy"]},
    cffi_modules=["d3p_fast/_build.py:ffibuilder"],
    # check_packet() as a vectorcall builtin (d3p_fast/_single/d3p_single.c): one
    # call at about the cost of an empty cffi call, which cffi's own calls cannot
    # reach.  Optional like the cffi module: without it d3p_fast uses the cffi wrapper.
    ext_modules=[Extension(
        "d3p_fast._d3p_single",
        sources=["d3p_fast/_single/d3p_single.c"],
        depends=["d3p_fast/csrc/d3p_window.h"],
        include_dirs=["d3p_fast/csrc"],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
    )],
    cmdclass={"build_ext": OptionalBuildExt},
    entry_points={"console_scripts": ["gdoi = scapy_gdoi.cli:main"]},
    zip_safe=False,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: C",
        "Topic :: System :: Networking",
        "Topic :: Security :: Cryptography",
    ],
)
