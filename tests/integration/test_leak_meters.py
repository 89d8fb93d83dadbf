"""The teardown's leak meters (tests/leaks.py) see each kind of leak they are there to catch: a meter that
cannot fail would let every teardown pass."""
import os
import subprocess
import time

from tests import leaks


def test_a_mount_in_the_host_namespace_is_seen(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    assert leaks.host_mounts([str(tmp_path)]) == set()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(target)], check=True)
    try:
        assert leaks.host_mounts([str(tmp_path)]) == {str(target)}
        assert leaks.host_mounts([str(tmp_path / "elsewhere")]) == set()
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert leaks.host_mounts([str(tmp_path)]) == set()


def test_a_container_process_left_running_is_seen(tmp_path, rootfs):
    # A process in its own mount namespace with its root in the test's rootfs, as a container's would be.
    p = subprocess.Popen(["unshare", "-m", "chroot", rootfs, "sleep", "30"])
    try:
        end = time.monotonic() + 5
        while not leaks.stray_processes([rootfs]) and time.monotonic() < end:
            time.sleep(0.02)
        found = leaks.stray_processes([rootfs])
        assert found and found[0].startswith("%d " % p.pid), found
        assert leaks.stray_processes([str(tmp_path)]) == []
    finally:
        p.kill()
        p.wait()
    assert leaks.settle(lambda: leaks.stray_processes([rootfs])) == []


def test_a_process_naming_the_state_root_is_seen(tmp_path):
    root = str(tmp_path / "state-root")
    p = subprocess.Popen(["sh", "-c", "read x", "sh", root], stdin=subprocess.PIPE)  # waits, no child
    try:
        assert any(s.startswith("%d " % p.pid) for s in leaks.stray_processes([], root))
    finally:
        p.kill()
        p.wait()
        p.stdin.close()
    assert leaks.stray_processes([], root) == []


def test_a_child_never_waited_for_is_seen():
    p = subprocess.Popen(["true"])
    try:
        # Wait for the child to exit and become a zombie: settle() returns on the first empty reading,
        # which is what a child still running gives, so it cannot be the wait here.
        end = time.monotonic() + 5
        while p.pid not in leaks.zombie_children() and time.monotonic() < end:
            time.sleep(0.01)
        assert p.pid in leaks.zombie_children()
    finally:
        p.wait()
    assert p.pid not in leaks.zombie_children()
