"""python -m runtime: the same as the pyrun command."""
from runtime.cli import run

run()
