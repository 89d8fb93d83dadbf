"""pyrun against runc, one test per case (tests/conformance/cases.py): an unmarked difference fails, and so
does a case marked as a known difference that no longer differs (the mark would be stale) or that does not do
what pyrun means to do instead (its pyrun_expect), a case whose probe
does not show in runc what it should (it would test nothing), and anything a case leaves behind."""
import pytest

from tests.conformance.cases import CASES
from tests.conformance.harness import Harness, shard

pytestmark = [pytest.mark.root, pytest.mark.conformance]


@pytest.fixture(scope="module")
def harness(rootfs):
    h = Harness(rootfs)
    try:
        yield h
    finally:
        h.close()


SELECTED = shard(CASES)  # all of them, unless $PYRUN_CF_SHARD picks a share (tests/vm runs two VMs)


@pytest.mark.parametrize("case", SELECTED, ids=[c.name for c in SELECTED])
def test_case(harness, case):
    r = harness.run_case(case)
    assert not r.problems, "left behind:\n" + "\n".join(r.problems) + "\n\n" + r.explain()
    assert r.expect_failure is None, r.expect_failure + "\n\n" + r.explain()
    if r.case.differs:  # the case as it runs on this host's shape (its `on` entry for it)
        assert r.diffs, "marked as a known difference (%s) but pyrun now matches runc: drop the mark\n\n%s" % (
            r.case.differs, r.explain())
        assert r.pyrun_expect_failure is None, r.pyrun_expect_failure + "\n\n" + r.explain()
    else:
        assert r.matches, r.explain()


def test_a_mark_must_say_what_pyrun_does_instead():
    from tests.conformance.harness import Case

    with pytest.raises(ValueError, match="pyrun_expect"):
        Case("x", "a marked case without an expectation of pyrun", differs="some reason")


def test_a_per_host_mark_must_say_what_pyrun_does_instead():
    from tests.conformance.harness import Case

    with pytest.raises(ValueError, match=r"on\['v2'\].*pyrun_expect"):
        Case("x", "a mark on pure cgroup2 only", on={"v2": {"differs": "some reason"}})
    with pytest.raises(ValueError, match="unknown host shape"):
        Case("x", "a shape that does not exist", on={"v3": {}})
    c = Case("x", "per host", probe="a", expect="A", on={"v2": {"probe": "b", "differs": "r", "pyrun_expect": "B"}})
    assert (c.for_host("v2").probe, c.for_host("v2").differs, c.for_host("v2").expect) == ("b", "r", "A")
    assert (c.for_host("hybrid").probe, c.for_host("hybrid").differs) == ("a", None)


def test_a_cgroup_runc_leaves_is_removed_with_what_is_in_it(tmp_path):
    """The harness's clean-up of the reference's own leak (runc 1.1.5, a create failing in nsexec): a
    cgroup with a process still in it is emptied (SIGKILL after the wait) and removed."""
    import os
    import subprocess
    import time

    from tests.conftest import require_root
    from tests.conformance.harness import _remove_reference_leak

    require_root()
    with open("/proc/self/mountinfo") as f:
        v2 = [ln.split()[4] for ln in f if ln.split()[ln.split().index("-") + 1] == "cgroup2"]
    assert v2, "no cgroup2 mount on this host"
    path = os.path.join(v2[0], "pyrun-test-leak-%d" % os.getpid())
    os.mkdir(path)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        t = time.monotonic()
        assert _remove_reference_leak(path, timeout=0.3)
        assert not os.path.exists(path) and time.monotonic() - t < 5
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()
        if os.path.exists(path):
            os.rmdir(path)
