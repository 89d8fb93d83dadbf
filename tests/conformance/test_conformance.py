"""pyrun against runc, one test per case (tests/conformance/cases.py): an unmarked difference fails, and so
does a case marked as a known difference that no longer differs (the mark would be stale), a case whose probe
does not show in runc what it should (it would test nothing), and anything a case leaves behind."""
import pytest

from tests.conformance.cases import CASES
from tests.conformance.harness import Harness

pytestmark = [pytest.mark.root, pytest.mark.conformance]


@pytest.fixture(scope="module")
def harness(rootfs):
    h = Harness(rootfs)
    try:
        yield h
    finally:
        h.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(harness, case):
    r = harness.run_case(case)
    assert not r.problems, "left behind:\n" + "\n".join(r.problems) + "\n\n" + r.explain()
    assert r.expect_failure is None, r.expect_failure + "\n\n" + r.explain()
    if case.differs:
        assert r.diffs, "marked as a known difference (%s) but pyrun now matches runc: drop the mark\n\n%s" % (
            case.differs, r.explain())
    else:
        assert r.matches, r.explain()
