#!/usr/bin/env bash
# One-time set-up on a Debian machine, as root: system packages, pyrun in a virtualenv (/opt/pyrun by
# default, an editable install of this checkout) linked as /usr/local/bin/pyrun, and the busybox rootfs of the example bundle.
#   PYRUN_VENV=/somewhere examples/setup.sh      to choose the virtualenv
# A virtualenv keeps pyrun's start-up lean: its interpreter skips the system site-packages' .pth files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
venv=${PYRUN_VENV:-/opt/pyrun}
# Debian's interpreter when there is one: it starts ~3 ms faster than a pyenv build, and every pyrun
# command pays interpreter start-up.
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=${PYTHON:-python3}; fi

pkgs=()
command -v runc >/dev/null || pkgs+=(runc)
[ -x /bin/busybox ] || pkgs+=(busybox-static)
command -v ip >/dev/null || pkgs+=(iproute2)
command -v gcc >/dev/null || pkgs+=(gcc)
command -v ps >/dev/null || pkgs+=(procps)
[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ] || [ -e /lib/x86_64-linux-gnu/libseccomp.so.2 ] || pkgs+=(libseccomp2)
if ! "$python" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    pkgs+=(python3-dev)
fi
"$python" -c "import ensurepip, venv" >/dev/null 2>&1 || pkgs+=(python3-venv)
if [ ${#pkgs[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# A virtualenv made from another interpreter (an earlier set-up) is made again.
home=$(dirname "$(readlink -f "$(command -v "$python")")")
if [ -x "$venv/bin/python" ] && ! grep -qx "home = $home" "$venv/pyvenv.cfg" 2>/dev/null; then
    rm -rf "$venv"
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
# Editable (compat mode: a plain path entry, nothing imported at start-up): the cffi modules are built in
# the checkout, so `pyrun` and the tests run the very same code.
log=$(mktemp)
if ! "$venv/bin/pip" install -q --config-settings editable_mode=compat -e "$repo[test]" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
test -e "$repo"/runtime/linux/_native*.so || { echo "setup: the cffi module was not built" >&2; exit 1; }
# The .pyc files, as pip writes them for a non-editable install: a sealed create/run/exec sees the code
# read-only and compiles a module whose .pyc is stale on every start (~2 ms for runtime/hotpath.py).
"$venv/bin/python" -m compileall -q "$repo/runtime" >/dev/null
# The command itself: the compiled launcher (runtime/launcher.c) that pip has just built for this
# virtualenv and installed as $venv/bin/pyrun (setup.py's build_scripts; the one way it is built). It
# starts the interpreter in isolated mode without site (-IS: site's .pth processing and `import re` cost
# ~6-8 ms on every command) on pyrun's directories, and for create/run/exec starts it sealed: the loader,
# interpreter, libraries and code mapped from read-only overlays (runtime/sealed.py), without the second
# interpreter start the Python-side sealing of any other entry point pays. A symlink, not a copy: the
# launcher trusts the paths it was built with only when it runs from $venv/bin.
head -c 4 "$venv/bin/pyrun" | grep -q ELF || { echo "setup: pip did not install the compiled launcher as $venv/bin/pyrun" >&2; exit 1; }
ln -sfn "$venv/bin/pyrun" /usr/local/bin/pyrun

"$here/busybox/make-rootfs.sh" "$here/busybox/rootfs" >/dev/null
echo "pyrun installed: $(command -v pyrun) ($("$venv/bin/pyrun" --version | head -1))"
