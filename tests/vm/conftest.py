"""tests/vm: test_vm.py boots VMs (root tests); guest/ holds the tests those VMs run inside. The guest
tests are collected only inside a VM (tests/vm/harness.py sets PYRUN_VM), where they insist on the host
shape they were booted for instead of skipping."""
import os

collect_ignore = [] if os.environ.get("PYRUN_VM") else ["guest"]
