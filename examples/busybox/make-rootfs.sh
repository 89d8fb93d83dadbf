#!/bin/sh
# Fill a rootfs with a static busybox and its applet links: enough for `pyrun run` to run real commands.
# Usage: make-rootfs.sh [DIR]   (default: rootfs/ beside this script). Installs busybox-static if missing.
set -eu
dir=${1:-$(dirname "$(readlink -f "$0")")/rootfs}
if ! [ -x /bin/busybox ]; then
    apt-get install -y -qq busybox-static >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null; }
fi
mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" "$dir/etc" "$dir/root" "$dir/run"
cp /bin/busybox "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
    [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
chmod 1777 "$dir/tmp"
echo "$dir"
