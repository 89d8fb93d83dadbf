#!/bin/sh
# pyrun VM stage 2, copied into the job share (tests/vm/harness.py boots it).
#   init.sh        PID 1 after switch_root: set the guest up; "plain" runs the job itself, "systemd"
#                  writes the job's units and execs systemd
#   init.sh job    run /vmjob/cmd with stdout/stderr on the virtio serial ports, status into /vmjob/status
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
. /vmjob/config
self=$(readlink -f "$0")

port() {  # the /dev node of the virtio serial port called $1
    for d in /sys/class/virtio-ports/*; do
        [ "$(cat "$d/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return; }
    done
    echo /dev/console
}

if [ "${1:-}" = job ]; then
    # the checkout at its own path, writable through a tmpfs overlay (nothing reaches the host's copy)
    mkdir -p /run/vmrepo-u /run/vmrepo-w "$repo"
    mount -t overlay -o lowerdir=/vmrepo,upperdir=/run/vmrepo-u,workdir=/run/vmrepo-w,xino=off vmrepo "$repo"
    out=$(port pyrun.stdout)
    err=$(port pyrun.stderr)
    export HOME=/root PYRUN_VM="$flavour"
    /bin/sh /vmjob/cmd >"$out" 2>"$err" </dev/null
    echo $? >/vmjob/status
    sync
    exit 0
fi

rm -f /.dockerenv   # systemd would take the guest for a container and ignore the kernel command line
mkdir -p /lib/modules
mount --bind "$modules" /lib/modules
busybox modprobe virtio_blk   # /dev/vda: a 64M scratch disk (the io controller's tests)
busybox modprobe tun          # /dev/net/tun, which a user namespace's containers bind from the host

if [ "$flavour" = systemd ]; then
    mkdir -p /etc/systemd/system /etc/tmpfiles.d
    ln -sf /dev/null /etc/tmpfiles.d/tmp.conf   # its "D /tmp" would walk every host file over 9p
    for u in systemd-logind.service getty@tty1.service serial-getty@ttyS0.service console-getty.service \
             systemd-udev-settle.service systemd-udevd.service systemd-udev-trigger.service \
             systemd-timesyncd.service systemd-networkd.service systemd-resolved.service \
             systemd-journal-flush.service systemd-random-seed.service systemd-update-utmp.service \
             systemd-tmpfiles-clean.timer apt-daily.timer apt-daily-upgrade.timer man-db.timer \
             e2scrub_all.timer fstrim.timer logrotate.timer dpkg-db-backup.timer \
             systemd-firstboot.service systemd-machine-id-commit.service ldconfig.service \
             systemd-hwdb-update.service systemd-sysusers.service systemd-journal-catalog-update.service \
             cron.service ssh.service containerd.service docker.service; do
        ln -sf /dev/null "/etc/systemd/system/$u"
    done
    cat >/etc/systemd/system/pyrun-vm.target <<UNIT
[Unit]
Description=pyrun VM job
Requires=pyrun-vm.service
After=pyrun-vm.service
AllowIsolate=yes
UNIT
    cat >/etc/systemd/system/pyrun-vm.service <<UNIT
[Unit]
Description=pyrun VM job
Requires=dbus.socket
After=basic.target dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/bin/sh $self job
StandardOutput=journal+console
StandardError=journal+console
UNIT
    exec /lib/systemd/systemd
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || echo "init: cannot enable $c" >/dev/console
done
hostname pyrun-vm
ip link set lo up 2>/dev/null || busybox ip link set lo up
# The job runs in the background so that this shell, waiting, reaps every orphan reparented to it.
/bin/sh "$self" job &
wait $!
sync
exec busybox poweroff -f
