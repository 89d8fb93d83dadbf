#!/usr/bin/env python3
"""What the systemd driver's D-Bus client costs a command: pyrun's own (runtime/cgroups/dbus.py) against
jeepney, the library it replaced, each in a fresh interpreter started as pyrun starts (`-IS`): import the
client, connect to a bus, authenticate, Hello, one method call (GetId), exit. Against a private
dbus-daemon started here (this machine has no systemd: runc's own driver, Go code in its process, cannot
be timed beside it; `--systemd-cgroup` runs of both runtimes are the VM tests' business). The interpreter's
floor (`-IS -c pass`) is timed in the same loop, so each client's cost is its time minus the floor.

Every `create`, `update` and `delete` of a container under `--systemd-cgroup` opens one such connection.

    python benchmarks/dbus.py [-n 40]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLIENTS = {
    "pyrun's client": (
        "import sys; sys.path[:0] = [%(repo)r]\n"
        "from runtime.cgroups import dbus\n"
        "c = dbus.Connection(%(bus)r)\n"
        "c.call(dbus.BUS_NAME, dbus.BUS_PATH, dbus.BUS_INTERFACE, 'GetId')\n"
        "c.close()\n"),
    "jeepney": (
        "import sys; sys.path[:0] = [%(repo)r] + %(site)r\n"
        "from jeepney import DBusAddress, new_method_call\n"
        "from jeepney.io.blocking import open_dbus_connection\n"
        "c = open_dbus_connection('unix:path=' + %(bus)r)\n"
        "c.send_and_get_reply(new_method_call(DBusAddress('/org/freedesktop/DBus', bus_name="
        "'org.freedesktop.DBus', interface='org.freedesktop.DBus'), 'GetId'), timeout=10)\n"
        "c.close()\n"),
    "floor (-IS -c pass)": "pass\n",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        sys.exit("dbus-daemon is not installed (Debian: dbus-daemon)")
    import jeepney  # noqa: F401  (installed with pyrun's test extras)

    site = [os.path.dirname(os.path.dirname(jeepney.__file__))]
    with tempfile.TemporaryDirectory(prefix="pyrun-dbus-") as t:
        bus = os.path.join(t, "bus")
        proc = subprocess.Popen([daemon, "--session", "--nofork", "--print-address", "--address=unix:path=" + bus],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            proc.stdout.readline()  # printed once it listens
            codes = {name: code % {"repo": REPO, "bus": bus, "site": site} for name, code in CLIENTS.items()}
            samples = {name: [] for name in codes}
            for _ in range(a.n):
                for name, code in codes.items():
                    t0 = time.perf_counter()
                    subprocess.run([a.python, "-IS", "-c", code], check=True)
                    samples[name].append(time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()
    med = {name: statistics.median(v) * 1000 for name, v in samples.items()}
    floor = med["floor (-IS -c pass)"]
    print("a fresh interpreter: import, connect, authenticate, Hello, GetId; median of %d (ms)" % a.n)
    print("| | whole | above the floor |")
    print("|---|---|---|")
    for name in CLIENTS:
        print("| %s | %.1f | %.1f |" % (name, med[name], med[name] - floor))
    mine, theirs = med["pyrun's client"] - floor, med["jeepney"] - floor
    print("pyrun's client / jeepney, above the floor: %.2f (%.1f ms less a command)" % (mine / theirs, theirs - mine))


if __name__ == "__main__":
    main()
