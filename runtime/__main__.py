"""python -m runtime: the same as the pyrun command."""
import sys

from runtime import hotpath

if hotpath.wanted(sys.argv[1:]):
    hotpath.install()
from runtime.cli import run  # noqa: E402 (after the image's finder, when it is wanted)

run()
