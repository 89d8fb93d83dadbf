"""libseccomp, loaded on demand: the declarations of the out-of-line cffi module _build_seccomp.py builds
(runtime/linux/_seccomp.py), and the library dlopen()ed only by containers that ask for seccomp."""

def load():
    """(ffi, lib); ImportError when the cffi module was not built, OSError when libseccomp is not there."""
    from runtime.linux._seccomp import ffi

    return ffi, ffi.dlopen("libseccomp.so.2")
