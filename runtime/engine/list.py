"""list: the state of every container under the root, as runc's list shows it (with the owner)."""

from runtime import lightos as os
from runtime import state as S
from runtime.engine.container import Container
from runtime.errors import NotFound, PyrunError


def rows(ctx) -> list[dict]:
    """One runtime-spec state per container (annotations kept: runc's list --format json shows them),
    with "owner": the user owning its state directory. A container that vanishes meanwhile is left out."""
    out = []
    for cid in S.list_ids(ctx.root):
        try:
            c = Container(ctx.root, cid, lock=False)
        except (NotFound, PyrunError):
            continue
        st = S.oci_state(c.record, c.status)
        st["owner"] = _owner(c.dir)
        out.append(st)
    return out


def _owner(path: str) -> str:
    import pwd

    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "#%d" % uid
