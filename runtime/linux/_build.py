"""cffi builder for the syscalls Python 3.9+ does not expose (clone, unshare, setns, mount, pivot_root,
capset, prctl). Compiled at install time (API mode) so that importing it at container start is free."""
from cffi import FFI

ffibuilder = FFI()

ffibuilder.cdef(
    """
    long pyrun_clone(unsigned long flags);
    long pyrun_clone3(unsigned long long flags, int cgroup_fd);
    int unshare(int flags);
    int setns(int fd, int nstype);
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);
    int umount2(const char *target, int flags);
    long pyrun_pivot_root(const char *new_root, const char *put_old);
    int sethostname(const char *name, size_t len);
    int setdomainname(const char *name, size_t len);
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
    long pyrun_capset(unsigned int version, int pid, const uint32_t *data);
    long pyrun_capget(unsigned int version, int pid, uint32_t *data);
    long pyrun_seccomp_filter(unsigned int flags, unsigned short len, const void *filter);
    long pyrun_open_tree(int dfd, const char *path, unsigned int flags);
    """
)

ffibuilder.set_source(
    "runtime.linux._native",
    r"""
    #define _GNU_SOURCE
    #include <sched.h>
    #include <unistd.h>
    #include <stdint.h>
    #include <sys/syscall.h>
    #include <sys/mount.h>
    #include <sys/prctl.h>
    #include <linux/filter.h>
    #include <linux/seccomp.h>

    /* Raw clone with no new stack: the child goes on from here like fork(2), but can be born in new
       namespaces (notably as pid 1 of a new pid namespace, owned by a new user namespace). */
    static long pyrun_clone(unsigned long flags) {
        return syscall(SYS_clone, flags, 0, NULL, NULL, 0);
    }
    /* clone3 with CLONE_INTO_CGROUP: the child is born in a cgroup2 directory, so nobody has to migrate
       it (a migration takes the kernel's global threadgroup lock, whose RCU sync costs 5-15 ms). */
    struct pyrun_clone_args {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
                 set_tid_size, cgroup;
    };
    static long pyrun_clone3(unsigned long long flags, int cgroup_fd) {
        struct pyrun_clone_args a = {0};
        a.flags = flags;
        a.exit_signal = 17; /* SIGCHLD */
        if (cgroup_fd >= 0) {
            a.flags |= 0x200000000ULL; /* CLONE_INTO_CGROUP */
            a.cgroup = (uint64_t)cgroup_fd;
        }
        return syscall(435 /* SYS_clone3 */, &a, sizeof a);
    }
    static long pyrun_pivot_root(const char *new_root, const char *put_old) {
        return syscall(SYS_pivot_root, new_root, put_old);
    }
    struct pyrun_cap_header { uint32_t version; int pid; };
    static long pyrun_capset(unsigned int version, int pid, const uint32_t *data) {
        struct pyrun_cap_header h = { version, pid };
        return syscall(SYS_capset, &h, data);
    }
    static long pyrun_capget(unsigned int version, int pid, uint32_t *data) {
        struct pyrun_cap_header h = { version, pid };
        return syscall(SYS_capget, &h, data);
    }
    static long pyrun_seccomp_filter(unsigned int flags, unsigned short len, const void *filter) {
        struct sock_fprog prog = { len, (struct sock_filter *)filter };
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    }
    #ifndef SYS_open_tree
    #define SYS_open_tree 428
    #endif
    static long pyrun_open_tree(int dfd, const char *path, unsigned int flags) {
        return syscall(SYS_open_tree, dfd, path, flags);
    }
    """,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
