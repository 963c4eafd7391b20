"""The built book as a reader's browser sees it: every page renders with no error output, links resolve, widgets show.

Run after `make book` (make test does): serves _build/html on localhost, opens each page in headless Chromium,
and saves a screenshot per page under _build/screenshots/ (a CI artifact).
"""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars"]


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]


PAGES = toc_pages()


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("No built book at _build/html: run `make book` first (make test does).")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def chromium(*args: str, timeout: int = 90) -> str:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (make test installs it when run as root).")
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                             capture_output=True, text=True, timeout=timeout)
    return out.stdout


class Refs(HTMLParser):
    """Collects internal href/src targets of a page."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if tag in ("a", "img", "script", "link") and a.get(key):
                self.refs.append(a[key])


def test_every_toc_page_was_built():
    missing = [p for p in PAGES if not (HTML / f"{p}.html").exists()]
    assert not missing, f"pages in _toc.yml missing from the build: {missing}"


def test_every_notebook_is_in_the_toc():
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"notebooks/{nb.stem}" in PAGES, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_and_images_resolve(page: str):
    path = HTML / f"{page}.html"
    parser = Refs()
    parser.feed(path.read_text(encoding="utf-8"))
    broken = []
    for ref in parser.refs:
        url = urlparse(ref)
        if url.scheme or ref.startswith(("#", "//", "mailto:", "data:")):
            continue
        target = (path.parent / unquote(url.path)).resolve()
        if not target.exists():
            broken.append(ref)
    assert not broken, f"{page}: broken internal links/images: {broken}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_chromium(server, page: str):
    url = f"{server}/{page}.html"
    dom = chromium("--virtual-time-budget=15000", "--dump-dom", url)
    assert "<body" in dom, f"{page}: Chromium returned no document"
    assert "Traceback (most recent call last)" not in dom, f"{page}: a Python traceback is rendered"
    assert not re.search(r'class="[^"]*\boutput (traceback|error)\b', dom), f"{page}: an error output is rendered"
    static = (HTML / f"{page}.html").read_text(encoding="utf-8")
    n_views = static.count("application/vnd.jupyter.widget-view+json")
    if n_views:
        rendered = len(re.findall(r'class="[^"]*\bwidget-(?:vbox|hbox|box|dropdown|slider|button|inline-hbox|output)\b', dom))
        assert rendered > 0, f"{page}: {n_views} widget view(s) saved but none rendered in the browser"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{page.replace('/', '__')}.png"
    chromium("--virtual-time-budget=15000", "--window-size=1280,2400", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 5000, f"{page}: no screenshot written"
