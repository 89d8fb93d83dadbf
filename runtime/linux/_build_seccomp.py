"""cffi builder for the few libseccomp calls pyrun uses: out-of-line ABI mode, so the declarations are
parsed at install time and no libseccomp headers are needed; the library is dlopen()ed only by
containers that ask for seccomp."""
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    typedef void *scmp_filter_ctx;
    struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_arch_remove(scmp_filter_ctx ctx, uint32_t arch_token);
    uint32_t seccomp_arch_native(void);
    int seccomp_merge(scmp_filter_ctx ctx_dst, scmp_filter_ctx ctx_src);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                               const struct scmp_arg_cmp *arg_array);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
    """
)
ffibuilder.set_source("runtime.linux._seccomp", None)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
