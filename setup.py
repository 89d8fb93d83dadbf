# cffi's out-of-line API mode: the C declarations are compiled once at install time, so importing
# runtime.linux costs nothing at container start (ffi.cdef at import would cost ~30 ms).
from setuptools import setup

setup(cffi_modules=["runtime/linux/_build.py:ffibuilder", "runtime/linux/_build_seccomp.py:ffibuilder"])
