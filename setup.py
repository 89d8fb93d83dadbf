# cffi's out-of-line API mode: the C declarations are compiled once at install time, so importing
# runtime.linux costs nothing at container start (ffi.cdef at import would cost ~30 ms).
# The JSON schemas live at the top of the repo (oci-spec/); a built wheel carries a copy of them as
# runtime/spec/schema/, where runtime.spec.validate looks first.
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSchemas(build_py):
    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        if os.path.realpath(self.build_lib) == os.path.realpath(here):
            return  # an editable install builds in place and reads oci-spec/ there
        target = os.path.join(self.build_lib, "runtime", "spec", "schema")
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(os.path.join(here, "oci-spec", "*.json")):
            shutil.copy(path, target)


setup(cffi_modules=["runtime/linux/_build.py:ffibuilder", "runtime/linux/_build_seccomp.py:ffibuilder"],
      cmdclass={"build_py": BuildWithSchemas})
