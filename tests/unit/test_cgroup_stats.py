"""The memory stats' "cache" field, as runc has it: the page cache charged to the container (v1
memory.stat "cache", v2 "file"), left out when zero (omitempty). The conformance case events-stats
cannot compare it with runc's (which container is charged a page depends on the run), so it is checked
here, on cgroup files written to a temporary directory."""
from runtime.cgroups import stats


def _write(d, files: dict) -> str:
    for name, text in files.items():
        (d / name).write_text(text)
    return str(d)


def test_v1_cache_reported_when_charged_and_left_out_when_zero(tmp_path):
    d = _write(tmp_path, {"memory.stat": "cache 8192\nrss 4096\n", "memory.usage_in_bytes": "12288\n",
                          "memory.limit_in_bytes": "9223372036854771712\n"})
    m = stats.v1_memory(d)
    assert m["cache"] == 8192 and m["usage"]["usage"] == 12288 and m["raw"]["rss"] == 4096
    _write(tmp_path, {"memory.stat": "cache 0\nrss 4096\n"})
    assert "cache" not in stats.v1_memory(d)


def test_v2_cache_is_file_and_left_out_when_zero(tmp_path):
    d = _write(tmp_path, {"memory.stat": "anon 4096\nfile 16384\n", "memory.current": "20480\n",
                          "memory.max": "max\n"})
    m = stats.v2_memory(d)
    assert m["cache"] == 16384 and m["usage"]["usage"] == 20480
    _write(tmp_path, {"memory.stat": "anon 4096\nfile 0\n"})
    assert "cache" not in stats.v2_memory(d)
