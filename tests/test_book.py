"""The book's own conventions: every chapter is in the TOC, starts with the Colab cell, and is committed clean."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from book_conventions import COLAB_CELL, REPO_URL

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOCAL = re.compile(re.escape(str(ROOT)) + r"|site-packages|/root/|/home/\w+/")


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_there_are_chapters():
    assert NOTEBOOKS, "no chapter notebooks found in notebooks/"


def test_toc_lists_every_notebook_and_only_existing_files():
    files = _toc_files()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is not in _toc.yml"
    for f in files:
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f"_toc.yml lists missing {f}"


def test_repository_url_lives_in_config_and_matches_colab_cell():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"] == REPO_URL and REPO_URL.startswith("https://github.com/")
    assert f"git+{REPO_URL}" in COLAB_CELL


def test_colab_source_install_gives_an_importable_utils(tmp_path):
    """What the Colab cell installs from the repository: the package builds and imports outside the checkout."""
    src, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(ROOT / "utils", src / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", src)  # a copy, so the build leaves nothing in the checkout
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-compile",
                    "--target", str(target), str(src)], check=True, capture_output=True)
    code = "import utils, sys; assert utils.__file__.startswith(sys.argv[1]); print(utils.__version__)"
    out = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (target / "utils" / "train.py").exists()


NOISE = {"execution", "ExecuteTime", "collapsed", "scrolled"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_metadata_has_no_execution_noise(path: Path):
    """nbstripout-style rule that keeps outputs: no per-run timestamps or UI state in the committed file."""
    nb = json.loads(path.read_text())
    assert set(nb["metadata"]) <= {"kernelspec", "language_info", "widgets"}, set(nb["metadata"])
    for i, cell in enumerate(nb["cells"]):
        assert not NOISE & set(cell["metadata"]), f"cell {i} carries {NOISE & set(cell['metadata'])}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_clean(path: Path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    assert "".join(cells[0]["source"]) == COLAB_CELL, "first cell must be tests/book_conventions.COLAB_CELL"
    assert "remove-cell" in cells[0]["metadata"].get("tags", [])
    counts = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        counts.append(cell["execution_count"])
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} committed with an error output"
            text = "".join(out.get("text", [])) + "".join(out.get("data", {}).get("text/plain", []))
            assert not LOCAL.search(text), f"cell {i} output shows a local path: {LOCAL.search(text).group(0)}"
    assert None not in counts, "notebook has unexecuted code cells: run it top to bottom and commit the outputs"
    assert counts == sorted(counts), "cells were executed out of order: re-run in a fresh kernel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_exercises(path: Path):
    nb = json.loads(path.read_text())
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"^#+ .*Exercises", md, re.M), "each chapter ends with an Exercises section"
