/* The `pyrun` command as `pip install` (and so examples/setup.sh) installs it: starts the interpreter on
 * pyrun's code without `site` (-IS), and for the commands that start processes a container can see
 * (create, run, exec) starts it already sealed:
 * the dynamic loader, the interpreter, its libraries and pyrun's code mapped from read-only overlayfs
 * mounts that are never attached anywhere (see runtime/sealed.py, which does the same from Python when
 * pyrun was started some other way, at the cost of a second interpreter start).
 *
 * The paths come from launcher.h, written when the wheel is built (runtime/launcher.py, from setup.py)
 * by `runtime.sealed.launcher_header()`. They hold only for the installation they were read for: when
 * the launcher runs from another directory (a wheel installed with --user, --target or into another
 * environment) or the interpreter or pyrun's code is not where they say, it starts `python -c` with
 * `site` through the interpreter next to it (or the recorded one): correct anywhere, a few ms slower.
 * A sealing that fails falls back to a plain start, and the Python side then seals itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "launcher.h" /* LOADER, PYTHON, ARGV0, CODE, SCRIPTS, LIBDIRS[], PYPATH[], SEAL_ROOTS[], LOCALE, GCONV */

#define SYS_fsopen_ 430
#define SYS_fsconfig_ 431
#define SYS_fsmount_ 432
#define SYS_execveat_ 322
#define FSCONFIG_SET_STRING_ 1
#define FSCONFIG_CMD_CREATE_ 6
#define MOUNT_ATTR_RDONLY_ 0x1
#define MOUNT_ATTR_NOSUID_ 0x2
#define MOUNT_ATTR_NODEV_ 0x4
#define MAXDIRS 32

static const char *value_flags[] = {"root", "log", "log-format", "rootless", "criu", NULL};

/* The subcommand, found as runc's (Go's) flag parser finds it: flags first, `-x`/`--x`, `--x=v`. */
static const char *command(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) return i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' || a[1] == 0) return a;
        const char *name = a + (a[1] == '-' ? 2 : 1);
        if (strchr(name, '=')) continue;
        for (const char **v = value_flags; *v; v++)
            if (strcmp(name, *v) == 0) { i++; break; }
    }
    return NULL;
}

/* -I makes the interpreter ignore PYTHONPROFILEIMPORTTIME: passed on as -X importtime (the profile is
 * how the tests check what a command imports). */
static int importtime(void) {
    const char *v = getenv("PYTHONPROFILEIMPORTTIME");
    return v && v[0];
}

static const char *dirs[MAXDIRS];
static int dirfds[MAXDIRS], ndirs, empty = -1;

static int overlay(const char *dir) {
    if (ndirs == MAXDIRS) return -1;
    if (empty < 0) { /* the second lower layer an overlay without an upper one needs */
        int fs = syscall(SYS_fsopen_, "tmpfs", 1);
        if (fs < 0) return -1;
        if (syscall(SYS_fsconfig_, fs, FSCONFIG_SET_STRING_, "size", "4k", 0) < 0 ||
            syscall(SYS_fsconfig_, fs, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) < 0) { close(fs); return -1; }
        empty = syscall(SYS_fsmount_, fs, 1, MOUNT_ATTR_RDONLY_);
        close(fs);
        if (empty < 0) return -1;
    }
    char lower[4200];
    snprintf(lower, sizeof lower, "%s:/proc/self/fd/%d", dir, empty);
    int fs = syscall(SYS_fsopen_, "overlay", 1);
    if (fs < 0) return -1;
    if (syscall(SYS_fsconfig_, fs, FSCONFIG_SET_STRING_, "lowerdir", lower, 0) < 0 ||
        syscall(SYS_fsconfig_, fs, FSCONFIG_SET_STRING_, "xino", "off", 0) < 0 ||
        syscall(SYS_fsconfig_, fs, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) < 0) { close(fs); return -1; }
    int m = syscall(SYS_fsmount_, fs, 0 /* inherited: the sealed process holds it */,
                    MOUNT_ATTR_RDONLY_ | MOUNT_ATTR_NOSUID_ | MOUNT_ATTR_NODEV_);
    close(fs);
    if (m < 0) return -1;
    dirs[ndirs] = dir;
    dirfds[ndirs++] = m;
    return m;
}

/* `dir` as seen through a read-only overlay, written to out: beneath one of SEAL_ROOTS (directories the
 * header's generator found to hold the others with no mount point in between: one overlay serves them
 * all, and every overlay made is one more to tear down when the process exits, ~0.15 ms each), else
 * through an overlay of its own. */
static int nroots; /* dirs[0..nroots) are SEAL_ROOTS, made first */

static int sealed(const char *dir, char *out, size_t n) {
    for (int i = 0; i < ndirs; i++) {
        size_t l = strlen(dirs[i]);
        if (strcmp(dirs[i], dir) == 0 || (i < nroots && strncmp(dirs[i], dir, l) == 0 && dir[l] == '/')) {
            snprintf(out, n, "/proc/self/fd/%d%s", dirfds[i], dir + l);
            return 0;
        }
    }
    int fd = overlay(dir);
    if (fd < 0) return -1;
    snprintf(out, n, "/proc/self/fd/%d", fd);
    return 0;
}

static char *dirname_of(const char *path) {
    char *d = strdup(path), *s = strrchr(d, '/');
    if (s) *s = 0;
    return d;
}

/* sys.path as a Python list literal, then pyrun's main. With seal=1 (create, run, exec) each entry is
 * the fd path of its overlay, and the modules come from the hot path's image (runtime/hotpath.py): one
 * read for ~35 modules, where each costs a search and four system calls through the overlays. The
 * light commands import ~10 modules, fewer than the image's read costs: they import as usual. */
static char *boot(int seal) {
    size_t cap = 8192, len = 0;
    char *b = malloc(cap), p[4300];
    len += snprintf(b + len, cap - len, "import sys; sys.path[:] = [");
    for (int i = 0; PYPATH[i]; i++) {
        if (seal) {
            if (sealed(PYPATH[i], p, sizeof p) < 0) { free(b); return NULL; }
            len += snprintf(b + len, cap - len, "'%s', ", p);
        } else {
            len += snprintf(b + len, cap - len, "'%s', ", PYPATH[i]);
        }
        if (len > cap - 512) { free(b); return NULL; }
    }
    if (seal) /* the hot path's image (runtime/hotpath.py), rebuilt into CODE when stale */
        snprintf(b + len, cap - len, "]; from runtime.hotpath import install; install('%s'); "
                 "from runtime.cli import run; run()", CODE);
    else
        snprintf(b + len, cap - len, "]; from runtime.cli import run; run()");
    return b;
}

static void sealed_exec(int argc, char **argv) {
    for (; SEAL_ROOTS[nroots]; nroots++)
        if (overlay(SEAL_ROOTS[nroots]) < 0) return;
    char *code = boot(1);
    if (!code) return;
    char ldir[4300], pdir[4300], prog[4400], lpath[4400];
    if (sealed(dirname_of(LOADER), ldir, sizeof ldir) < 0 || sealed(dirname_of(PYTHON), pdir, sizeof pdir) < 0)
        return;
    snprintf(lpath, sizeof lpath, "%s/%s", ldir, strrchr(LOADER, '/') + 1);
    int loader = open(lpath, O_PATH | O_CLOEXEC);
    if (loader < 0) return;
    snprintf(prog, sizeof prog, "%s/%s", pdir, strrchr(PYTHON, '/') + 1);
    char libpath[8192] = "", p[4300];
    for (int i = 0; LIBDIRS[i]; i++) {
        if (sealed(LIBDIRS[i], p, sizeof p) < 0) return;
        size_t l = strlen(libpath);
        snprintf(libpath + l, sizeof libpath - l, "%s%s", l ? ":" : "", p);
    }
    /* libc maps the locale and the gconv cache too. Unless LC_ALL is set, the sealed process runs in the
     * C locale (LC_ALL=C, for it only: not passed on to hooks): libc then loads no locale file and no
     * gconv module or cache at all (Python runs in its UTF-8 mode there, as runc ignores the locale). A
     * locale other than C, asked for by LC_ALL, comes from the overlays (LOCPATH, GCONV_PATH), at
     * ~2.5 ms a start: with GCONV_PATH, libc ignores the gconv cache and parses its text configuration. */
    char locpath[4400] = "", gconv[4400] = "", setenv_names[64] = "_PYRUN_SEALED_ENV=", *lc_all = NULL;
    if (!getenv("LC_ALL")) {
        lc_all = "LC_ALL=C";
        strcat(setenv_names, "LC_ALL,");
    } else {
        if (LOCALE[0] && !getenv("LOCPATH") && sealed(LOCALE, p, sizeof p) == 0) {
            snprintf(locpath, sizeof locpath, "LOCPATH=%s", p);
            strcat(setenv_names, "LOCPATH,");
        }
        if (GCONV[0] && !getenv("GCONV_PATH") && sealed(GCONV, p, sizeof p) == 0) {
            snprintf(gconv, sizeof gconv, "GCONV_PATH=%s", p);
            strcat(setenv_names, "GCONV_PATH");
        }
    }
    char held[512] = "_PYRUN_SEALED=";
    for (int i = 0; i < ndirs; i++) {
        size_t l = strlen(held);
        snprintf(held + l, sizeof held - l, "%s%d", i ? "," : "", dirfds[i]);
    }
    extern char **environ;
    int n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 6, sizeof *env);
    int e = 0;
    for (int i = 0; i < n; i++) env[e++] = environ[i];
    env[e++] = held;
    if (lc_all) env[e++] = lc_all;
    if (locpath[0]) env[e++] = locpath;
    if (gconv[0]) env[e++] = gconv;
    if (lc_all || locpath[0] || gconv[0]) env[e++] = setenv_names;
    char **args = calloc(argc + 14, sizeof *args);
    int a = 0;
    args[a++] = (char *)LOADER;
    args[a++] = "--argv0";
    args[a++] = (char *)ARGV0;
    args[a++] = "--library-path";
    args[a++] = libpath;
    args[a++] = prog;
    args[a++] = "-IS";
    if (importtime()) { args[a++] = "-X"; args[a++] = "importtime"; }
    args[a++] = "-c";
    args[a++] = code;
    for (int i = 1; i < argc; i++) args[a++] = argv[i];
    syscall(SYS_execveat_, loader, "", args, env, AT_EMPTY_PATH);
}

static char self_dir[4096];

/* The recorded paths are this installation's: the launcher runs from the scripts directory they were
 * read for, and the interpreter and pyrun's code are there. */
static int installed(void) {
    ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
    self_dir[n > 0 ? n : 0] = 0;
    char *s = strrchr(self_dir, '/');
    if (s) *s = 0;
    if (SCRIPTS[0] && strcmp(self_dir, SCRIPTS) != 0) return 0;
    return access(PYTHON, X_OK) == 0 && access(ARGV0, X_OK) == 0 && access(CODE "/runtime/cli.py", R_OK) == 0;
}

/* Any other installation: the interpreter next to the launcher (a virtualenv's, a prefix's), else the
 * recorded one, else python3 on PATH; with site, which finds pyrun wherever pip put it, and pyrun's
 * directory first when the launcher sits in <dir>/bin with pyrun in <dir> (pip install --target). The
 * current directory is taken off sys.path before anything is imported. */
static void fallback(int argc, char **argv) {
    char python[4200], target[4200];
    snprintf(python, sizeof python, "%s/python3", self_dir);
    const char *exe = access(python, X_OK) == 0 ? python : access(ARGV0, X_OK) == 0 ? ARGV0 : "python3";
    snprintf(target, sizeof target, "%s/../runtime/cli.py", self_dir);
    if (access(target, R_OK) == 0) snprintf(target, sizeof target, "%s/..", self_dir);
    else target[0] = 0;
    char **args = calloc(argc + 8, sizeof *args);
    int a = 0;
    args[a++] = (char *)exe;
    args[a++] = "-c";
    args[a++] = "import sys; sys.path[:1] = [p for p in sys.path[:1] if p]; d = sys.argv.pop(1); "
                "d and sys.path.insert(0, d); "
                "from runtime.cli import run; run()";
    args[a++] = target;
    for (int i = 1; i < argc; i++) args[a++] = argv[i];
    execvp(exe, args);
    fprintf(stderr, "pyrun: starting the interpreter %s: %s\n", exe, strerror(errno));
    exit(127);
}

int main(int argc, char **argv) {
    if (!installed()) fallback(argc, argv);
    const char *cmd = command(argc, argv);
    if (cmd && (!strcmp(cmd, "create") || !strcmp(cmd, "run") || !strcmp(cmd, "exec")) &&
        !getenv("_PYRUN_SEALED"))
        sealed_exec(argc, argv); /* returns only if sealing was not possible */
    for (int i = 0; i < ndirs; i++) close(dirfds[i]);
    char *code = boot(0);
    char **args = calloc(argc + 6, sizeof *args);
    int a = 0;
    args[a++] = (char *)ARGV0;
    args[a++] = "-IS";
    if (importtime()) { args[a++] = "-X"; args[a++] = "importtime"; }
    args[a++] = "-c";
    args[a++] = code;
    for (int i = 1; i < argc; i++) args[a++] = argv[i];
    execv(ARGV0, args);
    perror("pyrun: starting the interpreter " ARGV0);
    return 127;
}
