# cffi's out-of-line API mode: the C declarations are compiled once at install time, so importing
# runtime.linux costs nothing at container start (ffi.cdef at import would cost ~30 ms).
# The JSON schemas live at the top of the repo (oci-spec/); a built wheel carries a copy of them as
# runtime/spec/schema/, where runtime.spec.validate looks first.
# The `pyrun` command is the compiled launcher (runtime/launcher.c, built by runtime/launcher.py for the
# interpreter building the wheel), not a console script: pip's console script runs `site` and imports `re`
# before any of pyrun's code (~6-8 ms of every command). pip installs an ELF from the wheel's scripts as
# it is.
import glob
import importlib.util
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from distutils.command.build_scripts import build_scripts  # noqa: E402 (setuptools provides distutils)

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithSchemas(build_py):
    def run(self):
        super().run()
        if os.path.realpath(self.build_lib) == os.path.realpath(HERE):
            return  # an editable install builds in place and reads oci-spec/ there
        target = os.path.join(self.build_lib, "runtime", "spec", "schema")
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(os.path.join(HERE, "oci-spec", "*.json")):
            shutil.copy(path, target)


class BuildLauncher(build_scripts):
    """The `pyrun` script: runtime/launcher.c compiled with the paths of the installation being built
    for (after build_ext: the header's probe imports the freshly built pyrun)."""

    editable_mode = False  # set by setuptools' editable_wheel: pyrun's code stays in this tree

    def run(self):
        spec = importlib.util.spec_from_file_location("pyrun_launcher", os.path.join(HERE, "runtime", "launcher.py"))
        launcher = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(launcher)
        self.mkpath(self.build_dir)
        out = os.path.join(self.build_dir, "pyrun")
        build_lib = self.get_finalized_command("build").build_lib
        build_dirs = [HERE] if self.editable_mode else [os.path.abspath(build_lib)]
        try:
            launcher.build(out, build_dirs=build_dirs, editable=self.editable_mode)
        except launcher.BuildError as e:
            raise SystemExit("building the pyrun launcher (runtime/launcher.c): %s" % e)
        self.outfiles = [out]

    def get_outputs(self):
        return [os.path.join(self.build_dir, "pyrun")]


setup(cffi_modules=["runtime/linux/_build.py:ffibuilder", "runtime/linux/_build_seccomp.py:ffibuilder"],
      # build_scripts and install_scripts run only for a distribution with scripts: the launcher's source
      # stands for the one script, which BuildLauncher compiles.
      scripts=["runtime/launcher.c"],
      cmdclass={"build_py": BuildWithSchemas, "build_scripts": BuildLauncher})
