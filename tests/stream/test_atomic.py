import os

from stream.outputs.atomic import atomic_write_text


def test_atomic_write_replaces_whole_and_keeps_readable_permissions(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"
    assert target.stat().st_mode & 0o777 == 0o644
    os.chmod(target, 0o640)
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind
