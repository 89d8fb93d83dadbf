"""The README's feature table is a test map: every row pyrun supports names the test files that cover
it, and every file it names exists."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rows():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text.split("## Features against runc", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| runc feature") and "---" not in line:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            rows.append(cells)
    return rows


def test_the_table_is_there():
    assert len(_rows()) > 20


def test_every_supported_row_names_existing_tests():
    for cells in _rows():
        assert len(cells) == 4, cells
        feature, status, _notes, tests = cells
        named = re.findall(r"`([^`]+\.py)`", tests)
        if status.startswith("yes"):
            assert named, "the row %r names no test" % feature
        for t in named:
            assert os.path.isfile(os.path.join(REPO, "tests", t)), "%r names %s, which does not exist" % (feature, t)
