"""Every container gets a session keyring of its own, named as runc names it ("_ses.<id>"), so its
processes share neither the host's keys nor another container's; `--no-new-keyring` keeps the caller's."""
from __future__ import annotations


def _keyrings(name: str) -> list[list[str]]:
    """/proc/keys rows (id flags usage timeout perm uid gid type description: ...) for `name`."""
    with open("/proc/keys") as f:
        rows = [line.split() for line in f]
    return [r for r in rows if len(r) > 8 and r[8] == name + ":"]


def test_container_has_its_own_session_keyring(ct, bundle):
    cid = ct.create(bundle(["true"])).cid
    assert _keyrings("_ses." + cid), "no session keyring _ses.%s in /proc/keys" % cid


def test_no_new_keyring_is_honoured(ct, bundle):
    cid = ct.create(bundle(["true"]), flags=("--no-new-keyring",)).cid
    assert not _keyrings("_ses." + cid)


def test_like_runc(runc, ct, bundle):
    import subprocess

    b = bundle(["true"])
    cid = ct.create(b).cid
    rid = "runc-" + cid
    p = subprocess.run(runc.argv + ["--root", runc.root, "create", "--bundle", b.path, rid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    assert p.returncode == 0
    try:
        mine, theirs = _keyrings("_ses." + cid), _keyrings("_ses." + rid)
        assert mine and theirs, (mine, theirs)
        assert mine[0][4:8] == theirs[0][4:8], (mine, theirs)  # perm, uid, gid, type
    finally:
        runc("delete", "--force", rid)
