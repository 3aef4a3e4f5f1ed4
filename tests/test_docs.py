"""The documentation site builds with warnings as errors, every tutorial executed.

``make docs`` runs the same command.  The build is nitpicky (``-n``): every cross-reference
to secured_bio (``{func}`secured_bio...```, type hints, ``{doc}`` links, Markdown links to
other pages) must resolve, so a renamed function or a moved page fails here.  The tutorials
(MyST notebooks in ``docs/tutorials``) are executed by myst-nb with this venv's kernel; a
failing cell fails the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = ("genomic_access", "tumor_classification", "telemonitoring", "synthetic_education")


def sphinx_build(src: Path, out: Path, *, execute: bool = True,
                 timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """``sphinx-build -b html -E -W --keep-going -n SRC OUT`` in a subprocess."""
    env = dict(os.environ, SECURED_BIO_PROGRESS="0")
    env["SECURED_BIO_DOCS_EXECUTE"] = "force" if execute else "off"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-n", "-q",
         str(src), str(out)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


@pytest.mark.slow  # executes the four tutorials (secure GWAS, Flower, models): ~1-2 min
def test_docs__build_with_warnings_as_errors_executes_every_tutorial(tmp_path: Path) -> None:
    out = tmp_path / "html"
    r = sphinx_build(DOCS, out)
    assert r.returncode == 0, f"docs build failed:\n{r.stdout[-4000:]}\n{r.stderr[-8000:]}"
    for page in ("index", "getting_started", "data_stewards", "security", "api/genomics",
                 "api/federated", "tutorials/index"):
        assert (out / f"{page}.html").is_file(), page
    # The threat models are SECURITY.md itself, and the API reference is from the docstrings.
    assert "Reporting a vulnerability" in (out / "security.html").read_text(encoding="utf-8")
    assert 'id="secured_bio.genomics.ingest_vcf"' in (
        out / "api" / "genomics.html").read_text(encoding="utf-8")
    for name in TUTORIALS:
        html = (out / "tutorials" / f"{name}.html").read_text(encoding="utf-8")
        # executed: cell outputs and at least one figure are in the page
        assert "cell_output" in html, name
        assert "<img" in html, f"{name}: no figure in the executed tutorial"
    genomic = (out / "tutorials" / "genomic_access.html").read_text(encoding="utf-8")
    assert "largest difference in -log10 P" in genomic


def _mini_site(src: Path, body: str) -> Path:
    """A one-page site with the real conf.py (extensions, nitpicky rules, alias resolver)."""
    src.mkdir()
    shutil.copy(DOCS / "conf.py", src / "conf.py")
    (src / "other.md").write_text("# Other page\n", encoding="utf-8")
    (src / "index.md").write_text(
        "# Index\n\n" + body + "\n\n```{toctree}\n:hidden:\n\nother\n```\n", encoding="utf-8")
    return src


@pytest.mark.parametrize(("body", "message"), [
    ("See [the other page](missing.md).", "missing.md"),
    ("See {doc}`missing`.", "missing"),
    ("See {func}`secured_bio.genomics.no_such_function`.", "secured_bio.genomics.no_such_function"),
    ("See {mod}`secured_bio.genomics.no_such_module`.", "secured_bio.genomics.no_such_module"),
])
def test_docs__broken_internal_reference_fails_the_build(tmp_path: Path, body: str,
                                                          message: str) -> None:
    r = sphinx_build(_mini_site(tmp_path / "src", body), tmp_path / "html", execute=False,
                     timeout=300)
    assert r.returncode != 0
    assert message in r.stderr


def test_docs__valid_internal_references_build(tmp_path: Path) -> None:
    """The control for the test above: the same site with links that resolve builds."""
    # numpy is not secured_bio: without intersphinx (no network) it cannot resolve and is
    # ignored by conf.py's nitpick_ignore_regex.
    body = "See [the other page](other.md) and {doc}`other`; {class}`numpy.ndarray`."
    r = sphinx_build(_mini_site(tmp_path / "src", body), tmp_path / "html", execute=False,
                     timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]


def test_docs__failing_tutorial_cell_fails_the_build(tmp_path: Path) -> None:
    """A tutorial that no longer runs cannot be published: its error fails the build."""
    src = _mini_site(tmp_path / "src", "Text.")
    (src / "other.md").write_text(
        "---\nfile_format: mystnb\nkernelspec:\n  name: python3\n  display_name: Python 3\n"
        "---\n\n# A tutorial\n\n```{code-cell} ipython3\n"
        "from secured_bio.genomics import no_such_function\n```\n", encoding="utf-8")
    r = sphinx_build(src, tmp_path / "html", execute=True, timeout=300)
    assert r.returncode != 0
    assert "Executing notebook failed" in r.stderr
    assert "cannot import name 'no_such_function'" in r.stderr  # the cell's own error
