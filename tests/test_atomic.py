import pytest

from secured_bio._atomic import atomic_dir, atomic_path, atomic_paths, atomic_write


def test_atomic_write__failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError, match="crash"), atomic_write(target) as fh:
        fh.write("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write__failure_keeps_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new but unfinished")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_paths__all_or_nothing(tmp_path):
    a, b = tmp_path / "x.vcf.gz", tmp_path / "x.vcf.gz.tbi"
    with atomic_paths(a, b) as (ta, tb):
        ta.write_text("data")
        tb.write_text("index")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "data" and b.read_text() == "index"
    with pytest.raises(ValueError), atomic_paths(tmp_path / "y", tmp_path / "z") as (ty, _):
        ty.write_text("data")
        raise ValueError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.vcf.gz", "x.vcf.gz.tbi"]


def test_atomic_dir__replaces_only_on_success(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(KeyError), atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("2")
        raise KeyError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with atomic_dir(out) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_check_replaceable_dir__empty_subfolders_count_as_empty(tmp_path):
    from secured_bio._atomic import check_replaceable_dir
    from secured_bio.errors import ConfigError

    out = tmp_path / "run"
    (out / "report" / "deeper").mkdir(parents=True)  # what Snakemake makes for outputs
    check_replaceable_dir(out, marker="metrics.json")
    (out / "report" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not an earlier secured_bio output"):
        check_replaceable_dir(out, marker="metrics.json")
