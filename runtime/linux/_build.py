"""cffi builder for the syscalls Python 3.9+ does not expose (clone, unshare, setns, mount, pivot_root,
capset, prctl), and for two it exposes only through extension modules the hot path does without
(socket: _socket, setrlimit: resource). Compiled at install time (API mode) so that importing it at
container start is free."""
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
    long pyrun_seccomp_filter(unsigned int flags, unsigned short len, const void *filter);
    long pyrun_openat2(int dfd, const char *path, unsigned long long flags, unsigned long long mode,
                       unsigned long long resolve);
    long pyrun_open_tree(int dfd, const char *path, unsigned int flags);
    long pyrun_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                          unsigned int flags);
    long pyrun_mount_setattr(int dfd, const char *path, unsigned int flags, unsigned long long attr_set,
                             unsigned long long attr_clr, unsigned long long propagation,
                             unsigned long long userns_fd);
    long pyrun_fsopen(const char *fsname, unsigned int flags);
    long pyrun_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux);
    long pyrun_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
    long pyrun_close_range(unsigned int first, unsigned int last, unsigned int flags);
    long pyrun_execveat(int dfd, const char *path, char *const argv[], char *const envp[], int flags);
    long pyrun_bpf(int cmd, void *attr, unsigned int size);
    long pyrun_keyctl(int op, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
    long pyrun_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
    long pyrun_sched_setattr(int pid, const void *attr, unsigned int flags);
    long pyrun_ioprio_set(int which, int who, int ioprio);
    long pyrun_fstatfs_type(int fd);
    int socket(int domain, int type, int protocol);
    long pyrun_setrlimit(int resource, unsigned long long soft, unsigned long long hard);
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
    #include <sys/vfs.h>
    #include <sys/resource.h>
    #include <sys/socket.h>
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
    static long pyrun_seccomp_filter(unsigned int flags, unsigned short len, const void *filter) {
        struct sock_fprog prog = { len, (struct sock_filter *)filter };
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    }
    /* The syscalls below by number (x86_64): glibc 2.36 wraps only some of them. */
    struct pyrun_open_how { uint64_t flags, mode, resolve; };
    static long pyrun_openat2(int dfd, const char *path, unsigned long long flags, unsigned long long mode,
                              unsigned long long resolve) {
        struct pyrun_open_how how = { flags, mode, resolve };
        return syscall(437, dfd, path, &how, sizeof how);
    }
    static long pyrun_open_tree(int dfd, const char *path, unsigned int flags) {
        return syscall(428, dfd, path, flags);
    }
    static long pyrun_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                                 unsigned int flags) {
        return syscall(429, from_dfd, from_path, to_dfd, to_path, flags);
    }
    struct pyrun_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
    static long pyrun_mount_setattr(int dfd, const char *path, unsigned int flags, unsigned long long attr_set,
                                    unsigned long long attr_clr, unsigned long long propagation,
                                    unsigned long long userns_fd) {
        struct pyrun_mount_attr a = { attr_set, attr_clr, propagation, userns_fd };
        return syscall(442, dfd, path, flags, &a, sizeof a);
    }
    static long pyrun_fsopen(const char *fsname, unsigned int flags) { return syscall(430, fsname, flags); }
    static long pyrun_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux) {
        return syscall(431, fd, cmd, key, value, aux);
    }
    static long pyrun_fsmount(int fd, unsigned int flags, unsigned int attr_flags) {
        return syscall(432, fd, flags, attr_flags);
    }
    static long pyrun_close_range(unsigned int first, unsigned int last, unsigned int flags) {
        return syscall(436, first, last, flags);
    }
    static long pyrun_execveat(int dfd, const char *path, char *const argv[], char *const envp[], int flags) {
        return syscall(322, dfd, path, argv, envp, flags);
    }
    static long pyrun_bpf(int cmd, void *attr, unsigned int size) { return syscall(321, cmd, attr, size); }
    static long pyrun_keyctl(int op, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
        return syscall(250, op, a2, a3, a4, a5);
    }
    static long pyrun_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode) {
        return syscall(238, mode, nodemask, maxnode);
    }
    static long pyrun_sched_setattr(int pid, const void *attr, unsigned int flags) {
        return syscall(314, pid, attr, flags);
    }
    static long pyrun_ioprio_set(int which, int who, int ioprio) { return syscall(251, which, who, ioprio); }
    /* setrlimit without Python's resource module (an extension module's load, ~0.2 ms of each start). */
    static long pyrun_setrlimit(int resource, unsigned long long soft, unsigned long long hard) {
        struct rlimit r = { (rlim_t)soft, (rlim_t)hard };
        return setrlimit(resource, &r);
    }
    /* The filesystem type of an fd (Python's fstatvfs does not give f_type). */
    static long pyrun_fstatfs_type(int fd) {
        struct statfs s;
        if (fstatfs(fd, &s) < 0) return -1;
        return (long)s.f_type;
    }
    """,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
