"""cffi out-of-line API builder for d3p_fast (run by setup.py through `cffi_modules`).

It never imports the package: setuptools execs this file, and `python
d3p_fast/_build.py` builds the extension in place for development.

Each public header in csrc/ marks the declarations cffi should see between
`/* cffi:begin */` and `/* cffi:end */`; the same header is what the C compiler
includes, so the Python-visible API and the C API cannot drift apart.
"""
import os
import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE / "csrc"
_CDEF_BLOCK = re.compile(r"/\* cffi:begin \*/(.*?)/\* cffi:end \*/", re.S)


def _relative(path):
    # setuptools wants source paths relative to the directory setup.py runs in.
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def collect_cdef(headers):
    """Concatenate the cffi-visible blocks of *headers*."""
    blocks = []
    for header in headers:
        blocks.extend(_CDEF_BLOCK.findall(header.read_text()))
    return "\n".join(blocks)


headers = sorted(CSRC.glob("*.h"))
sources = sorted(CSRC.glob("*.c"))

ffibuilder = FFI()
ffibuilder.cdef(collect_cdef(headers))
ffibuilder.set_source(
    "d3p_fast._d3p_fast",
    "\n".join('#include "%s"' % h.name for h in headers),
    sources=[_relative(s) for s in sources],
    include_dirs=[_relative(CSRC)],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    os.chdir(HERE.parent)
    ffibuilder.compile(verbose=True)
