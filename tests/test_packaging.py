"""Packaging: every package folder ships, and importing secured_bio stays light."""

import subprocess
import sys
import tomllib

from conftest import REPO


def test_pyproject__lists_every_package_folder():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    roots = {"secured_bio": REPO / "secured_bio", "secured_bio_pilots": REPO / "pilots"}
    found = set()
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found.add(".".join((name, *rel)))
    found.add("secured_bio.data_specs")
    assert found == listed


def test_import__has_no_heavy_side_effects():
    code = (
        "import sys, secured_bio, secured_bio.pilots, secured_bio.cli; "
        "heavy = {'torch', 'crypten', 'flwr', 'monai', 'snakemake'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
