"""The built book as a reader's browser sees it.

Run after `make book` (make test does): serves _build/html on localhost and opens every page in one headless
Chromium, driven over the DevTools protocol (tests/site/cdp.py). Each page must render with no error output, no
JavaScript error, no broken image, no raw MyST/Markdown syntax in its text, and its saved widgets must show. The
static explorer of chapter 2 is operated like a reader would: change its controls, and the numbers shown must
become the precomputed ones for that choice (read from its grid.json). A screenshot per page goes to
_build/screenshots/ (a CI artifact).
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from cdp import Browser

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars", "--disable-extensions",
         "--disable-default-apps", "--mute-audio"]
EXPLORER_PAGE = "notebooks/02_feature_extraction"
GRID = ROOT / "book" / "_static" / "explorer" / "grid.json"


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]


PAGES = toc_pages()


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("No built book at _build/html: run `make book` first (make test does).")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the browser's requests are not test output
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (make test installs it when run as root).")
    b = Browser(CHROMIUM, FLAGS)
    yield b
    b.close()


@pytest.fixture
def page(browser):
    p = browser.new_page()
    yield p
    p.close()


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


def test_rendered_chapter_numbers_are_file_numbers():
    """A chapter NN_name renders its title as "NN. Title"; front and back matter carry no number."""
    wrong = []
    for p in PAGES:
        html = (HTML / f"{p}.html").read_text(encoding="utf-8")
        h1 = re.search(r"<h1>(.*?)</h1>", html[html.find("<article"):], re.S)  # the page's title, not the print header
        shown = re.search(r'class="section-number">(\d+)\.', h1.group(1)) if h1 else None
        file_number = re.match(r"notebooks/(\d+)_", p)
        expected = int(file_number.group(1)) if file_number else None
        if (int(shown.group(1)) if shown else None) != expected:
            wrong.append(f"{p}: rendered as {shown.group(1) if shown else 'unnumbered'}, expected {expected or 'unnumbered'}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("page_name", PAGES)
def test_internal_links_and_images_resolve(page_name: str):
    path = HTML / f"{page_name}.html"
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
    assert not broken, f"{page_name}: broken internal links/images: {broken}"


# What must never be visible in a page's text: MyST roles and Markdown that was shown instead of rendered.
RAW = [(re.compile(r"\{(?:cite(?::\w+)?|doc|ref|numref|term|eq|glue(?::\w+)?|download|abbr|math|sub|sup|py:\w+|func|"
                   r"class|meth|attr|mod|prf:\w+|bdg[\w-]*|guilabel|kbd|code)\}"), "a MyST role"),
       (re.compile(r"```|~~~"), "a literal code fence"),
       (re.compile(r"\*\*[^\s*](?:[^*\n]*[^\s*])?\*\*"), "unrendered **bold**"),
       (re.compile(r"^:::\s*\{?\w", re.M), "a literal directive fence")]

# The page's visible prose (code cells' sources, code spans and maths left out) and the text of its outputs.
VISIBLE_TEXT_JS = r"""(() => {
  const main = document.querySelector("main article") || document.querySelector("main") || document.body;
  const prose = main.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, .cell_input, .cell_output, .math, mjx-container, .MathJax, nav, .headerlink")
       .forEach(n => n.remove());
  const outputs = Array.from(main.querySelectorAll(".cell_output"), o => {
    const c = o.cloneNode(true);
    c.querySelectorAll("script, style, .math, mjx-container, .MathJax").forEach(n => n.remove());
    return c.innerText;
  });
  // A role left unrendered shows as "{cite}" followed by a code span: catch it even though code is left out.
  const roleBeforeCode = Array.from(main.querySelectorAll("p code, li code, td code"))
    .filter(c => !c.closest("pre, .cell_input") && /\{[\w:-]+\}$/.test((c.previousSibling && c.previousSibling.textContent) || ""))
    .map(c => c.previousSibling.textContent.match(/\{[\w:-]+\}$/)[0] + "`" + c.textContent + "`");
  return {prose: prose.innerText, outputs: outputs.join("\n"), roles: roleBeforeCode};
})()"""

# Images that failed: force lazy ones to load, then list those still without pixels.
BROKEN_IMAGES_JS = r"""(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => new Promise(done => {
    i.loading = "eager"; i.addEventListener("load", done); i.addEventListener("error", done); setTimeout(done, 5000);
  })));
  return imgs.filter(i => i.naturalWidth === 0 && !/\.svg(\?|$)/.test(i.currentSrc || i.src)).map(i => i.currentSrc || i.src);
})()"""


def open_page(page, server: str, name: str, hash_: str = "") -> None:
    page.goto(f"{server}/{name}.html{hash_}")
    static = (HTML / f"{name}.html").read_text(encoding="utf-8")
    if "application/vnd.jupyter.widget-view+json" in static:
        page.wait_for("document.querySelector('.widget-vbox, .widget-hbox, .widget-box') !== null", timeout=20)
    if "static-explorer" in static:
        page.wait_for("Array.from(document.querySelectorAll('.static-explorer'))"
                      ".every(e => e.dataset.rendered || e.querySelector('.se-error'))", timeout=30)
    time.sleep(0.3)  # let late console messages arrive


def _own_errors(errors: list[str], server: str) -> list[str]:
    """Errors of the book's own pages and scripts. Failed loads of external URLs are left out: the check runs with
    no network, and the book's own behaviour is what it tests (external assets have a fallback or are optional)."""
    return [e for e in errors if not (re.search(r"\((https?://(?!127\.0\.0\.1)[^)]*)\)$", e)
                                      or "net::ERR_NAME_NOT_RESOLVED" in e or "net::ERR_INTERNET_DISCONNECTED" in e)]


@pytest.mark.parametrize("page_name", PAGES)
def test_page_renders_in_chromium(server, page, page_name: str):
    open_page(page, server, page_name)
    dom = page.eval("document.documentElement.outerHTML")
    assert "<body" in dom, f"{page_name}: Chromium returned no document"
    assert "Traceback (most recent call last)" not in dom, f"{page_name}: a Python traceback is rendered"
    assert not re.search(r'class="[^"]*\boutput (traceback|error)\b', dom), f"{page_name}: an error output is rendered"
    static = (HTML / f"{page_name}.html").read_text(encoding="utf-8")
    n_views = static.count("application/vnd.jupyter.widget-view+json")
    if n_views:
        rendered = len(re.findall(r'class="[^"]*\bwidget-(?:vbox|hbox|box|dropdown|slider|button|inline-hbox|output)\b', dom))
        assert rendered > 0, f"{page_name}: {n_views} widget view(s) saved but none rendered in the browser"

    problems = []
    text = page.eval(VISIBLE_TEXT_JS)
    for where in ("prose", "outputs"):
        for pattern, what in RAW:
            for m in pattern.finditer(text[where]):
                context = " ".join(text[where][max(0, m.start() - 40):m.end() + 40].split())
                problems.append(f"{what} in the {where}: ...{context}...")
    problems += [f"a MyST role in the prose: {r}" for r in text["roles"]]
    problems += [f"broken image: {src}" for src in page.eval(BROKEN_IMAGES_JS)]
    problems += [f"JavaScript: {e}" for e in _own_errors(page.errors(), server)]
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{page_name.replace('/', '__')}.png"
    page.screenshot(shot)
    assert shot.exists() and shot.stat().st_size > 5000, f"{page_name}: no screenshot written"
    assert not problems, f"{page_name}: {len(problems)} problem(s) a reader would see:\n" + "\n".join(problems)


# --- The static explorer (chapter 2) -------------------------------------------------------------------------

CURRENT_ROW_JS = r"""(() => {
  const row = document.querySelector('.static-explorer tr[data-role=current]');
  if (!row) return null;
  const out = {};
  row.querySelectorAll('td[data-field]').forEach(td => { out[td.dataset.field] = td.dataset.value || td.textContent; });
  return out;
})()"""


def _grid() -> dict:
    return json.loads(GRID.read_text())


def _expected(grid: dict, choice: dict) -> dict:
    """The numbers the explorer must show for a choice, computed here from grid.json."""
    info = grid["strategies"][choice["strategy"]]
    run = next(r for r in grid["runs"] if all(r[k] == choice[k] for k in ("strategy", "dataset", "labels_per_class", "k", "lr_mult"))
               and (r["epochs"] >= choice["epochs"] if info["prefix_epochs"] else r["epochs"] == choice["epochs"]))
    e = choice["epochs"] - 1
    fmt = lambda s: f"{s['mean'][e]:.3f} ± {s['sd'][e]:.3f}"  # noqa: E731
    k = f" (k={run['k']})" if choice["strategy"] in ("top_k", "gradual") else ""
    return {"val": fmt(run["val_summary"]), "test": fmt(run["test_summary"]), "epochs": str(choice["epochs"]),
            "strategy": info["label"] + k, "dataset": choice["dataset"], "trainable_params": str(run["trainable_params"])}


def _a_different_choice(grid: dict) -> dict:
    """A precomputed choice unlike the defaults in every control it can change: another strategy, dataset,
    label count and a shorter run."""
    d = grid["defaults"]
    for r in sorted(grid["runs"], key=lambda r: (r["strategy"] == d["strategy"], r["dataset"] == d["dataset"],
                                                 r["labels_per_class"] == d["labels_per_class"])):
        epochs = grid["strategies"][r["strategy"]]["axes"]["epochs"]
        e = next((x for x in epochs if x != d["epochs"] and x <= r["epochs"]), r["epochs"])
        if grid["strategies"][r["strategy"]]["prefix_epochs"] or e == r["epochs"]:
            return {k: r[k] for k in ("strategy", "dataset", "labels_per_class", "k", "lr_mult")} | {"epochs": e}
    raise AssertionError("grid.json has no run to choose")


def _set(page, control: str, value) -> None:
    """Choose a value in one of the explorer's selects, as a reader's click would (a change event)."""
    js = f"""(() => {{
      const s = document.querySelector('.static-explorer select[data-control="{control}"]');
      const v = {json.dumps('null' if value is None else str(value))};
      if (!Array.from(s.options).some(o => o.value === v)) return 'no option ' + v + ' in ' + Array.from(s.options, o => o.value);
      s.value = v; s.dispatchEvent(new Event('change', {{bubbles: true}})); return 'ok';
    }})()"""
    assert page.eval(js) == "ok", f"{control}={value}: {page.eval(js)}"


def _wait_rendered_after(page, before: int) -> None:
    assert page.wait_for(f"Number(document.querySelector('.static-explorer').dataset.rendered || 0) > {before}", timeout=20), \
        "the explorer's chart did not re-render"


def _rendered(page) -> int:
    return int(page.eval("Number(document.querySelector('.static-explorer').dataset.rendered || 0)"))


def _check_row(row: dict, want: dict) -> None:
    for field, value in want.items():
        assert row[field] == value, f"{field}: shown {row[field]!r}, grid.json says {value!r}"


def test_static_explorer_shows_the_precomputed_numbers_for_the_chosen_setting(server, page):
    grid = _grid()
    assert (HTML / "_static" / "explorer" / "grid.json").read_text() == GRID.read_text(), "the build has a stale grid.json"
    open_page(page, server, EXPLORER_PAGE)
    assert page.eval("document.querySelector('.static-explorer .se-error') === null"), page.eval(
        "document.querySelector('.static-explorer').innerText")
    d = grid["defaults"]
    shown = {c: page.eval(f"document.querySelector('.static-explorer select[data-control=\"{c}\"]').value")
             for c in ("strategy", "dataset", "labels_per_class", "k", "lr_mult", "epochs")}
    start = {"strategy": shown["strategy"], "dataset": shown["dataset"], "labels_per_class": int(shown["labels_per_class"]),
             "k": int(shown["k"]), "lr_mult": None if shown["lr_mult"] == "null" else float(shown["lr_mult"]),
             "epochs": int(shown["epochs"])}
    assert start["strategy"] == d["strategy"] and start["dataset"] == d["dataset"], start
    first = page.eval(CURRENT_ROW_JS)
    _check_row(first, _expected(grid, start))

    # A reader changes the controls one by one; the numbers become the precomputed ones for the new choice.
    choice = _a_different_choice(grid)
    for control in ("strategy", "dataset", "labels_per_class", "k", "lr_mult", "epochs"):
        before = _rendered(page)
        _set(page, control, choice[control])
        _wait_rendered_after(page, before)
    row = page.eval(CURRENT_ROW_JS)
    want = _expected(grid, choice)
    _check_row(row, want)
    assert (row["val"], row["test"]) != (first["val"], first["test"]) or want == _expected(grid, start), \
        "the numbers did not change with the setting"
    n_lines = page.eval("document.querySelectorAll('.static-explorer .se-chart svg path.mark-line, "
                        ".static-explorer .se-chart svg .mark-line path').length")
    assert n_lines >= 1, "no validation curve drawn"

    # Add to comparison, choose another epoch count: two rows and two curves; Clear: back to one.
    page.eval("document.querySelector('.static-explorer button[data-action=add]').click()")
    other = next(e for e in grid["strategies"][choice["strategy"]]["axes"]["epochs"] if e != choice["epochs"])
    before = _rendered(page)
    _set(page, "epochs", other)
    _wait_rendered_after(page, before)
    roles = page.eval("Array.from(document.querySelectorAll('.static-explorer tbody tr'), r => r.dataset.role)")
    assert roles == ["compare", "current"], roles
    pinned = page.eval("Object.fromEntries(Array.from(document.querySelectorAll('.static-explorer tr[data-role=compare] td[data-field]'), "
                       "td => [td.dataset.field, td.dataset.value || td.textContent]))")
    _check_row(pinned, want)
    _check_row(page.eval(CURRENT_ROW_JS), _expected(grid, {**choice, "epochs": other}))
    legend = page.eval("Array.from(document.querySelectorAll('.static-explorer .se-chart svg .role-legend-label text'), t => t.textContent)")
    assert len(legend) == 2 and legend[0].startswith("1. ") and legend[1].startswith("current: "), legend
    before = _rendered(page)
    page.eval("document.querySelector('.static-explorer button[data-action=clear]').click()")
    _wait_rendered_after(page, before)
    assert page.eval("document.querySelectorAll('.static-explorer tbody tr').length") == 1
    assert not _own_errors(page.errors(), server), page.errors()


def test_static_explorer_reads_a_setting_from_the_url(server, page):
    """A link such as 02_feature_extraction.html#static-explorer?strategy=...&epochs=... opens on that choice."""
    grid = _grid()
    choice = _a_different_choice(grid)
    query = "&".join(f"{k}={'null' if v is None else v}" for k, v in choice.items())
    open_page(page, server, EXPLORER_PAGE, f"#static-explorer?{query}")
    _check_row(page.eval(CURRENT_ROW_JS), _expected(grid, choice))
