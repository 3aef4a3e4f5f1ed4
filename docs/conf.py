"""Sphinx configuration of the secured_bio documentation (``make docs``).

Tutorials are MyST notebooks (``tutorials/*.md``) that myst-nb executes on every build with
this virtualenv's ipykernel, so a tutorial that no longer runs fails the build.  The test
``tests/test_docs.py`` builds with ``-W --keep-going -n`` (warnings are errors, every
internal cross-reference must resolve).
"""

from __future__ import annotations

import os
from typing import Any

import secured_bio

project = "secured_bio"
author = "secured_bio developers"
copyright = "secured_bio developers"
release = version = secured_bio.__version__

extensions = [
    "myst_nb",  # Markdown pages (MyST) and executed notebooks; it loads myst_parser itself
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
root_doc = "index"

html_theme = "furo"
html_title = f"secured_bio {version}"
html_static_path: list[str] = []

# --- MyST / myst-nb ---------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# "force": every build runs every tutorial from scratch (a cache keyed on the notebook text
# would not notice a change in the library), so a tutorial cannot rot unnoticed.
nb_execution_mode = os.environ.get("SECURED_BIO_DOCS_EXECUTE", "force")
nb_execution_timeout = 600
# Each tutorial runs in a fresh temporary folder, deleted after the build: the tutorials write
# their cohorts and results to the current folder, as a scientist running them would.
nb_execution_in_temp = True
# A failing cell is a warning carrying the cell, its traceback and the page; the build runs
# with -W (make docs, tests/test_docs.py), so it fails, after reporting every broken tutorial
# (--keep-going).  Raising instead would abort at the first one with a bare ExecutionError.
nb_execution_raise_on_error = False
nb_execution_show_tb = True
nb_merge_streams = True
# The kernels inherit this environment: a non-interactive MPLBACKEND (Agg, common in CI) would
# replace the notebook's inline backend and drop every matplotlib figure from the pages.
os.environ.pop("MPLBACKEND", None)

# --- autodoc / numpydoc -------------------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False
numpydoc_show_class_members = False  # autodoc documents members; numpydoc would list them twice
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- cross-references ---------------------------------------------------------------------------
# The build runs nitpicky (-n) so that every reference to secured_bio must resolve.  There is no
# network at build time, hence no intersphinx: references to Python, numpy, pandas, torch...
# cannot resolve and are ignored here; only secured_bio's own targets are checked.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!secured_bio\b).*"),
    # Private helpers (a leading underscore) are outside the public API and are not documented;
    # they appear only as type hints of public signatures (e.g. ``telemetry.fhir._Vital``).
    (r"py:.*", r"secured_bio(\.\w+)*\._\w+.*"),
]


def _exists(target: str) -> bool:
    """Whether ``target`` names a module or an attribute path inside an importable module."""
    import importlib

    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _resolve_alias(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``secured_bio.pkg.module.Name`` to where it is documented, ``secured_bio.pkg.Name``.

    The API reference documents each public object once, under the package that re-exports it
    (``secured_bio.genomics.ingest_vcf``), while type hints and docstrings often name the
    defining module (``secured_bio.genomics.ingest.ingest_vcf``) or an undocumented submodule.
    A reference is redirected to the longest documented prefix package holding the same name;
    a module reference to the nearest documented parent module.  Only targets that exist
    (importable module, then attributes) are redirected; anything else stays broken (and fails
    the nitpicky build).
    """
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("secured_bio") or not _exists(target):
        return None
    domain = env.get_domain("py")
    objects = domain.objects
    parts = target.split(".")
    candidates: list[str] = []
    if node.get("reftype") == "mod":
        candidates = [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    else:
        for i in range(len(parts) - 2, 0, -1):
            for j in range(len(parts) - 1, i, -1):  # Name or Class.method after the package
                candidates.append(".".join(parts[:i] + parts[j:]))
    for name in candidates:
        if name in objects:
            obj = objects[name]
            return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode,
                                name)
    return None


def setup(app: Any) -> None:
    """Register the alias resolver (runs before the nitpicky warning is emitted)."""
    app.connect("missing-reference", _resolve_alias)


