"""The cross-checks against plink2/plink1.9/bcftools fail, never skip, when a tool is missing."""

from __future__ import annotations

import re
from pathlib import Path

import conftest
import pytest

HINT = r"make sysdeps.*apt-get install plink2 plink1\.9"


@pytest.fixture()
def no_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which no reference tool is found."""
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.mark.parametrize("tools", [("plink2",), ("plink1.9",), ("plink2", "plink1.9"),
                                   ("plink2", "bcftools")])
def test_require_tools__missing_plink_fails_with_the_install_hint(no_tools, tools) -> None:
    with pytest.raises(pytest.fail.Exception, match=HINT) as failed:
        conftest.require_tools(*tools)
    assert not isinstance(failed.value, pytest.skip.Exception)
    assert all(t in str(failed.value) for t in tools)


def test_requires_tools_marker__fails_the_test_setup_when_plink_is_missing(no_tools) -> None:
    class Item:  # what pytest_runtest_setup reads of a collected test
        def iter_markers(self, name: str):
            marks = [conftest.requires_tools("plink2", "plink1.9").mark,
                     pytest.mark.reference.mark]
            return [m for m in marks if m.name == name]

    with pytest.raises(pytest.fail.Exception, match=HINT):
        conftest.pytest_runtest_setup(Item())  # type: ignore[arg-type]


def test_requires_tools_marker__passes_when_the_tools_are_installed(monkeypatch,
                                                                     tmp_path: Path) -> None:
    for tool in ("plink2", "plink1.9"):
        exe = tmp_path / tool
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    conftest.require_tools("plink2", "plink1.9")  # no exception


#: Running one of these tools (a subprocess argument list or a name constant).
_RUNS_TOOL = re.compile(r"""(\[\s*|=\s*)["'](plink2|plink1\.9|bcftools|tabix)["']""")
_SKIPS_ON_TOOL = re.compile(
    r"""(skipif|importorskip|pytest\.skip)[^\n]*\n?[^\n]*(plink|bcftools|tabix)|"""
    r"""which\(\s*["'](plink2|plink1\.9|bcftools|tabix)["']""")


def test_reference_checks__every_test_module_that_runs_a_tool_requires_it() -> None:
    """No module checks for the tools itself (a skip); each one uses require(s)_tools."""
    here = Path(__file__).resolve().parent
    offenders, users = [], []
    for path in sorted(here.rglob("*.py")):
        if path.name in ("conftest.py", Path(__file__).name):
            continue
        text = path.read_text()
        if _SKIPS_ON_TOOL.search(text):
            offenders.append(str(path.relative_to(here)))
        if _RUNS_TOOL.search(text):
            users.append(path)
            if "require_tools(" not in text and "requires_tools(" not in text:
                offenders.append(str(path.relative_to(here)))
    assert not offenders, offenders
    assert len(users) >= 5  # the plink/bcftools cross-checks were found
