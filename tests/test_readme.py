"""Every command the README shows works: run for real where quick, checked otherwise.

Each ```bash block of README.md runs in its own fresh folder (a new user's demo):
- quick `secured-bio` commands (demo cohort, validation, ingest, QC, a one-site GWAS, ...) run
  for real, in order, so that later commands find what earlier ones wrote;
- slow or multi-host ones (a whole pilot, federated training, the relay) are checked against
  the CLI: the command exists and takes every option the README gives it;
- `snakemake` commands run as dry runs (`-n`) on a fresh working folder, once per pilot where
  the README writes NAME; `make` targets as `make -n`.
A command of another kind fails the test, so a new README command must be taught here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from conftest import BIN, REPO

from secured_bio.cli import cli

PILOTS = ("genomic_access", "tumor_classification", "telemonitoring", "synthetic_education")

#: `secured-bio` commands quick enough to run for real (subcommand path, first argument).
QUICK = {
    (): None, ("pilots", "list"): None, ("validate",): None, ("genomics", "ingest"): None,
    ("genomics", "qc"): None, ("gwas", "run"): None, ("education", "example-spec"): None,
    ("smpc", "keygen"): None, ("demo",): "genomic_access",
}
#: Words that mark a command as a template, not something to paste (never run for real).
PLACEHOLDER = re.compile(r"\.\.\.|\[|\bNAME\b|\bDIR\b|\bYAML\b|example\.org")


def readme_blocks() -> list[list[str]]:
    """The commands of each ```bash block: continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = []
    for body in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        joined = re.sub(r"\\\n\s*", " ", body)
        cmds = [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()]
        blocks.append([c for c in cmds if c])
    return blocks


BLOCKS = readme_blocks()


def _resolve(tokens: list[str]) -> tuple[click.Command, tuple[str, ...], list[str]]:
    """The click command a `secured-bio` argument list names, its path, and the rest."""
    cmd: click.Command = cli
    path: list[str] = []
    rest = list(tokens)
    while rest and isinstance(cmd, click.Group):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        if sub is None:
            break
        cmd, path = sub, [*path, rest.pop(0)]
    return cmd, tuple(path), rest


def _check_options(tokens: list[str], where: str) -> click.Command:
    cmd, path, rest = _resolve(tokens)
    assert path or rest[:1] == ["--help"], f"{where}: no such secured-bio command"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for tok in rest:
        opt = tok.strip("[]|").split("=")[0]
        if opt.startswith("--"):
            assert opt in known, f"{where}: {' '.join(path)} has no option {opt}"
    return cmd


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    import os

    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["SECURED_BIO_PROGRESS"] = "0"
    e["HOME"] = str(tmp_path_factory.mktemp("home"))
    return e


def _run(cmd: str | list[str], cwd: Path, env: dict[str, str], timeout: int = 180):
    return subprocess.run(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), text=True,
                          capture_output=True, timeout=timeout)


def _snakemake_dry_run(line: str, tmp: Path, env: dict[str, str]) -> None:
    work = tmp / "workflow"
    if not work.exists():  # a fresh working folder, as after a clone
        shutil.copytree(REPO / "config", work / "config")
    args = shlex.split(line, comments=True)[1:]
    for pilot in (PILOTS if "NAME" in line else (None,)):
        a = [x.replace("NAME", pilot) if pilot else x for x in args]
        res = _run([str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "-n", *a],
                   work, env)
        assert res.returncode == 0, f"{line!r} (NAME={pilot}):\n{res.stdout[-1500:]}" \
                                    f"{res.stderr[-1500:]}"


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b[0].split("#")[0][:40] for b in BLOCKS])
def test_readme_block__every_command_works(block, tmp_path, env):
    for line in block:
        # a pipeline: the README's part is the secured-bio command at its end
        part = line.split("|")[-1].strip() if "| secured-bio" in line else line
        tokens = shlex.split(part, comments=True)
        redirect = tokens.index(">") if ">" in tokens else None
        args = tokens[:redirect]
        if args[0] == "make":
            res = _run(["make", "-n", "-C", str(REPO), *args[1:]], tmp_path, env)
            assert res.returncode == 0, f"{line!r}: {res.stderr[-800:]}"
        elif args[0] == ".ci/run":
            script = REPO / ".ci" / "run"
            assert script.is_file() and script.stat().st_mode & 0o111, line
            assert _run(["bash", "-n", str(script)], tmp_path, env).returncode == 0
        elif args[0] == "snakemake":
            _snakemake_dry_run(part, tmp_path, env)
        elif args[0] == "secured-bio":
            _cmd, path, rest = _resolve(args[1:])
            _check_options(args[1:], line)
            quick = path in QUICK and QUICK[path] in (None, *rest[:1])
            if quick and not PLACEHOLDER.search(part):
                res = _run(part, tmp_path, env)
                assert res.returncode == 0, f"{line!r}:\n{res.stderr[-1500:]}"
            else:  # too slow or a template: the command must at least explain itself
                res = _run([str(BIN / "secured-bio"), *path, "--help"], tmp_path, env)
                assert res.returncode == 0 and "Usage:" in res.stdout, line
        elif args[0] == "curl" or line.startswith("TOKEN=$(curl"):
            _check_hub_route(line)
        else:
            pytest.fail(f"README command of an unknown kind: {line!r}; teach "
                        "tests/test_readme.py how to check it")


def _check_hub_route(line: str) -> None:
    """A curl call of the hub's REST API: the route and method must exist (the end-to-end
    tests in tests/hub run them against a real hub)."""
    import tempfile

    from secured_bio.hub.app import create_app
    from secured_bio.hub.settings import HubSettings

    m = re.search(r"localhost:8400(/api/v1/[\w/{}-]+)", line)
    assert m, f"{line!r}: no hub URL"
    method = "POST" if " -d " in f" {line} " else "GET"
    with tempfile.TemporaryDirectory() as d:
        app = create_app(HubSettings(data_dir=Path(d)))
        routes = {(path, meth.upper()) for path, ops in app.openapi()["paths"].items()
                  for meth in ops}
        app.state.engine.dispose()
    assert (m.group(1), method) in routes, f"{line!r}: the hub has no {method} {m.group(1)}"


def test_readme__blocks_found():
    commands = [c for b in BLOCKS for c in b]
    assert len(BLOCKS) >= 8 and any(c.startswith("snakemake") for c in commands)
    assert "snakemake --cores 2 results/NAME/run/metrics.json" in commands
