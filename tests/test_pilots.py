"""The pilot registry: built-in pilots, a real third-party distribution, broken plugins."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_cli

from secured_bio.errors import ConfigError, PluginError, UnknownPilotError
from secured_bio.pilots import PilotSpec, collect_pilot, get_pilot, list_pilots, run_pilot

BUILTIN = {"genomic_access", "synthetic_education", "telemonitoring", "tumor_classification"}


def test_list_pilots__four_builtin_pilots_with_their_files():
    specs = {s.name: s for s in list_pilots()}
    assert BUILTIN <= set(specs)
    for name in BUILTIN:
        spec = specs[name]
        assert spec.config_schema is not None and spec.config_schema.is_file()
        assert spec.rules_file is not None and spec.rules_file.name == f"{name}.smk"
        assert spec.rules_file.is_file()
        assert spec.data_specs


def test_get_pilot__unknown_name_suggests_near_name():
    with pytest.raises(UnknownPilotError, match="did you mean 'telemonitoring'"):
        get_pilot("telemonitorng")


def test_pilot_spec__rejects_bad_name_and_status():
    with pytest.raises(PluginError, match="invalid pilot name"):
        PilotSpec(name="Bad-Name", description="x", run=lambda o, c: {})
    with pytest.raises(PluginError, match="invalid pilot status"):
        PilotSpec(name="ok", description="x", run=lambda o, c: {}, status="done")


def _write_dist_info(site: Path, dist: str, entry: str) -> None:
    """A minimal installed distribution: what pip leaves in site-packages."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[secured_bio.pilots]\n{entry}\n")


def test_list_pilots__plugin_import_error_names_distribution(tmp_path, monkeypatch):
    _write_dist_info(tmp_path, "broken_pilot_dist", "broken = broken_pilot_missing_module")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"'broken' failed to load.*broken_pilot_dist 0\.1"):
        list_pilots()


def test_list_pilots__plugin_returning_wrong_type_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "wrongtype_pilot.py").write_text(textwrap.dedent("""
        from secured_bio.pilots import hookimpl

        @hookimpl
        def secured_bio_register_pilot():
            return {"name": "wrongtype"}
    """))
    _write_dist_info(tmp_path, "wrongtype_dist", "wrongtype = wrongtype_pilot")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="expected secured_bio.pilots.PilotSpec, got dict"):
        list_pilots()


TINY_PLUGIN = '''
"""A third-party pilot used by the tests."""
import json
from secured_bio.pilots import PilotSpec, hookimpl

def run(out_dir, config):
    (out_dir / "answer.json").write_text(json.dumps({"sites": config["sites"]}))
    if config["fail"]:
        raise RuntimeError("tiny pilot failed on purpose")
    return {"answer": 2 * config["sites"]}

def collect(results, config):
    return {"collected": json.loads((results / "answer.json").read_text())["sites"]}

@hookimpl
def secured_bio_register_pilot():
    from pathlib import Path
    return PilotSpec(name="tiny_pilot", description="A tiny third-party pilot", run=run,
                     collect=collect, status="preview",
                     config_schema=Path(__file__).parent / "schema.yaml")
'''
TINY_SCHEMA = """
type: object
additionalProperties: false
properties:
  sites: {type: integer, minimum: 1, default: 3}
  fail: {type: boolean, default: false}
"""


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    """Build and install a real distribution with an entry point into a private folder."""
    src = tmp_path_factory.mktemp("tiny_src")
    site = tmp_path_factory.mktemp("tiny_site")
    (src / "tiny_pilot").mkdir()
    (src / "tiny_pilot" / "__init__.py").write_text(TINY_PLUGIN)
    (src / "tiny_pilot" / "schema.yaml").write_text(TINY_SCHEMA)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tiny-pilot"
        version = "0.1"

        [project.entry-points."secured_bio.pilots"]
        tiny_pilot = "tiny_pilot"

        [tool.setuptools]
        packages = ["tiny_pilot"]
        [tool.setuptools.package-data]
        tiny_pilot = ["schema.yaml"]
    """))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(site), str(src)],
        check=True, capture_output=True, text=True,
    )
    return site


def test_third_party_pilot__listed_and_runnable(tiny_site, cli_env, tmp_path):
    cli_env["PYTHONPATH"] = str(tiny_site)
    listed = run_cli("pilots", "list", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    names = {row["name"]: row for row in json.loads(listed.stdout)}
    assert BUILTIN | {"tiny_pilot"} <= set(names)
    assert names["tiny_pilot"]["status"] == "preview"

    out = tmp_path / "tiny"
    ran = run_cli("pilots", "run", "tiny_pilot", "--out", str(out), "--sites", "4", env=cli_env)
    assert ran.returncode == 0, ran.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pilot"] == "tiny_pilot" and metrics["answer"] == 8
    assert metrics["config"] == {"sites": 4, "fail": False}
    assert json.loads((out / "answer.json").read_text()) == {"sites": 4}


def test_run_pilot__failure_leaves_no_output(tiny_site, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tiny_site))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="on purpose"):
        run_pilot("tiny_pilot", out, {"fail": True})
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_run_pilot__bad_config_and_foreign_out_dir(tiny_site, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tiny_site))
    with pytest.raises(ConfigError, match="did you mean 'sites'"):
        run_pilot("tiny_pilot", tmp_path / "a", {"site": 2})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty and is not an earlier secured_bio output"):
        run_pilot("tiny_pilot", foreign, {})
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_collect_pilot__metrics_from_workflow_outputs(tiny_site, cli_env, tmp_path):
    cli_env["PYTHONPATH"] = str(tiny_site)
    results = tmp_path / "results"
    results.mkdir()
    (results / "answer.json").write_text(json.dumps({"sites": 5}))
    res = run_cli("pilots", "collect", "tiny_pilot", "--results", str(results),
                  "--set", "sites=5", env=cli_env)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["collected"] == 5 and metrics["config"]["sites"] == 5
    bad = run_cli("pilots", "collect", "tiny_pilot", "--results", str(results),
                  "--set", "site=5", env=cli_env)
    assert bad.returncode == 2 and "did you mean 'sites'" in bad.stderr
    missing = run_cli("pilots", "collect", "tiny_pilot", "--results", str(tmp_path / "none"),
                      env=cli_env)
    assert missing.returncode == 1 and "results folder not found" in missing.stderr


def test_collect_pilot__pilot_without_collect_is_refused(tmp_path):
    with pytest.raises(PluginError, match="cannot collect workflow outputs"):
        collect_pilot("telemonitoring", tmp_path)
