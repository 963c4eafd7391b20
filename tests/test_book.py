"""The book's own conventions: every chapter is in the TOC, starts with the Colab cell, and is committed clean."""
from __future__ import annotations

import itertools
import json
import re
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser
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


# --- Chapter numbers: file number = place in the TOC = rendered number ------------------------------------------

# Which part each chapter number belongs to (13_evaluating and 14_shipping close the Practice part).
PARTS = {"Foundations": range(1, 3), "Vision": range(3, 8), "Sequences": range(8, 12), "Practice": range(12, 15)}
CHAPTER_FILE = re.compile(r"^(\d{2})_[a-z0-9_]+$")


def _number(stem: str) -> int | None:
    m = CHAPTER_FILE.match(stem)
    return int(m.group(1)) if m else None


def _toc_parts() -> list[dict]:
    return yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]


def test_notebook_file_names_are_numbered_without_gaps():
    """Chapters are NN_name.ipynb; appendices (appendix_name.ipynb) are unnumbered back matter."""
    chapters = [nb for nb in NOTEBOOKS if not nb.stem.startswith("appendix_")]
    numbers = [_number(nb.stem) for nb in chapters]
    assert None not in numbers, f"chapter files must be named NN_name.ipynb (or appendix_name.ipynb): {[nb.name for nb in chapters]}"
    assert numbers == list(range(1, len(numbers) + 1)), f"chapter numbers must run 1, 2, 3, ... with no gap or repeat: {numbers}"


def test_toc_lists_chapters_in_file_order_in_their_parts():
    listed = []
    for part in _toc_parts():
        for entry in part["chapters"]:
            if entry["file"].startswith("notebooks/") and not Path(entry["file"]).name.startswith("appendix_"):
                n = _number(Path(entry["file"]).name)
                assert part["caption"] in PARTS and n in PARTS[part["caption"]], (
                    f"{entry['file']} is in the part {part['caption']!r}; chapter {n} belongs to "
                    f"{next((p for p, r in PARTS.items() if n in r), 'no part yet: extend PARTS in tests/test_book.py')!r}")
                listed.append(n)
    assert listed == sorted(listed), f"_toc.yml lists chapters out of file order: {listed}"


def test_rendered_chapter_numbers_equal_file_numbers():
    """Sphinx numbers the documents of numbered parts consecutively across parts (sphinx-multitoc-numbering), so
    chapter N renders as "N." exactly when every numbered part holds only chapters and front/back matter is not numbered."""
    count = 0
    for part in _toc_parts():
        for entry in part["chapters"]:
            n = _number(Path(entry["file"]).name) if entry["file"].startswith("notebooks/") else None
            if part.get("numbered"):
                count += 1
                assert n is not None, f"{entry['file']} is not a chapter but sits in the numbered part {part['caption']!r}"
                assert n == count, f"{entry['file']} would render as chapter {count}"
            else:
                assert n is None, f"{entry['file']} is a chapter but its part {part['caption']!r} is not numbered"


# --- Chapter mentions: "chapter N" must be a link to chapter N ---------------------------------------------------

ROLE = re.compile(r"\{(doc|ref)\}`([^`]*)`")
MDLINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
NUM = r"(?:\d+|\x00\d+\x00)"
MENTION = re.compile(rf"\b(?:chapters?|ch\.)\s*{NUM}(?:\s*(?:,|and|or|to|through|&|–|—|-)\s*{NUM})*", re.I)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LABEL = re.compile(r"^\(([\w.:-]+)\)=\s*$", re.M)
OUTPUT_FIX = "write it as a plain Markdown link, e.g. [chapter 8](08_word_vectors.ipynb)"


def _pages() -> list[tuple[Path, list[tuple[str, str]]]]:
    """(page, [(where, markdown source)]) for the book's .md pages and the notebooks' markdown cells."""
    pages = [(p, [("", p.read_text(encoding="utf-8"))]) for p in sorted((ROOT / "book").glob("*.md"))]
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        pages.append((nb, [(f"cell {i}", "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]))
    return pages


def _labels() -> dict[str, int | None]:
    """MyST targets `(label)=` → the number of the chapter that defines them (None outside chapters)."""
    return {label: _number(page.stem) for page, parts in _pages() for _, text in parts for label in LABEL.findall(text)}


def _doc_target(page: Path, target: str) -> Path | None:
    """The file a {doc} or Markdown link target names, relative to the page (or to the book root with a leading /)."""
    base = ROOT if target.startswith("/") else page.parent
    path = (base / target.lstrip("/").split("#")[0]).resolve()
    candidates = [path.with_suffix(".ipynb"), path.with_suffix(".md")] if not path.suffix else [path]
    return next((c for c in candidates if c.is_file() and c.suffix in (".ipynb", ".md")), None)


def _numbers_in(text: str) -> list[int]:
    """Chapter numbers a piece of text names: in "chapter N" phrases, or the whole text when it is a bare number."""
    if re.fullmatch(r"\s*\d+\s*", text):
        return [int(text)]
    return [int(n) for m in MENTION.finditer(text) if not _about_other_work(text, m) for n in re.findall(r"\d+", m.group())]


def _about_other_work(text: str, m: re.Match) -> bool:
    return re.match(r"\s+of\b", text[m.end():]) is not None  # "chapter 7 of Goodfellow et al." is not ours


def _check_prose(page: Path, text: str, labels: dict, in_output: bool) -> list[str]:
    """Problems with chapter mentions in one piece of Markdown; links are replaced by \\x00i\\x00 placeholders."""
    problems, links = [], []

    def link(kind: str, label: str, target: str, whole: str) -> str:
        numbers = _numbers_in(label)
        if numbers:
            if kind == "ref":
                n = labels.get(target, "missing")
                if n == "missing":
                    problems.append(f"{whole!r}: no target ({target})= defined")
            else:
                file = _doc_target(page, target)
                n = _number(file.stem) if file else "missing"
                if file is None:
                    problems.append(f"{whole!r}: links to a page that does not exist")
                elif in_output and (kind == "doc" or file.suffix != ".ipynb" or "/" in target):
                    problems.append(f"{whole!r}: in a code output {OUTPUT_FIX} (MyST roles do not render in Jupyter)")
            if n != "missing" and any(k != n for k in numbers):
                problems.append(f"{whole!r}: says chapter {numbers} but links to "
                                + (f"chapter {n}" if n is not None else "a page that is not a numbered chapter"))
        links.append(whole)
        return f"\x00{len(links) - 1}\x00"

    def role(m: re.Match) -> str:
        inner = m.group(2)
        explicit = re.fullmatch(r"(.*?)\s*<([^<>]+)>\s*", inner, re.S)
        label, target = (explicit.group(1), explicit.group(2)) if explicit else ("", inner)
        return link(m.group(1), label, target, m.group())

    def mdlink(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):  # external URL or same-page anchor
            if _numbers_in(m.group(1)):
                problems.append(f"{m.group()!r}: a chapter mention must link to that chapter's notebook")
            return m.group()
        return link("md", m.group(1), target, m.group())

    text = FENCE.sub("", text)
    text = ROLE.sub(role, text)
    text = MDLINK.sub(mdlink, text)
    text = CODE_SPAN.sub("", text)
    for m in MENTION.finditer(text):
        raw = re.findall(r"(?<!\x00)\b\d+\b(?!\x00)", m.group())
        if raw and not _about_other_work(text, m):
            context = re.sub(r"\x00(\d+)\x00", lambda k: links[int(k.group(1))], text[max(0, m.start() - 30):m.end() + 20])
            fix = OUTPUT_FIX if in_output else "link it: {doc}`chapter N <NN_name>` or [chapter N](NN_name.ipynb)"
            problems.append(f"...{' '.join(context.split())}...: plain 'chapter {', '.join(raw)}'; {fix}")
    return problems


def _output_texts(cell: dict):
    """(kind, text) of a code cell's outputs a reader sees: Markdown, or else plain text and streams."""
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "text/markdown" in data:
            yield "markdown", "".join(data["text/markdown"])
        elif "text/plain" in data and "application/vnd.jupyter.widget-view+json" not in data:
            yield "plain", "".join(data["text/plain"])
        elif out["output_type"] == "stream":
            yield "plain", "".join(out["text"])


def test_config_renders_markdown_outputs_as_myst():
    """The output rule below relies on it: with myst-nb's default (commonmark) a link such as
    [chapter 8](08_word_vectors.ipynb) in a Markdown *output* stays a raw href to the .ipynb and is broken in the
    book; with "myst" it resolves to the chapter's page, while still working in Jupyter and Colab."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["config"].get("nb_render_markdown_format") == "myst"


def test_chapter_mentions_link_to_that_chapter():
    """Every "chapter N" / "Chapter N" / "ch. N" is (part of) a link to the notebook numbered N.

    In .md pages and notebook Markdown cells: a {doc}/{ref} role (e.g. {doc}`chapter 5 <05_cnn_transfer>`,
    chapters {doc}`8 <08_word_vectors>` and {doc}`9 <09_ulmfit>`) or a Markdown link to the notebook.
    In code outputs (generated Markdown), only a plain Markdown link to the .ipynb in the same folder renders
    both in Jupyter and in the book; plain-text outputs cannot link, so they must not name chapter numbers.
    """
    labels, problems = _labels(), []
    for page, parts in _pages():
        for where, text in parts:
            problems += [f"{page.relative_to(ROOT)} {where}: {p}".replace(" : ", ": ") for p in _check_prose(page, text, labels, False)]
    for nb in NOTEBOOKS:
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            for kind, text in _output_texts(cell) if cell["cell_type"] == "code" else ():
                found = _check_prose(nb, text, labels, True)
                if kind == "plain":
                    found = [f"{p.split(': plain')[0]}: a plain-text output cannot link; display it as Markdown and {OUTPUT_FIX}"
                             if ": plain" in p else p for p in found]
                problems += [f"{nb.relative_to(ROOT)} cell {i} output: {p}" for p in found]
    assert not problems, f"{len(problems)} chapter mention(s) that can drift:\n" + "\n".join(problems)


@pytest.mark.parametrize("text, n_problems", [
    ("as in chapter 5", 1), ("{doc}`chapter 5 <05_cnn_transfer>`'s recipe", 0), ("{doc}`chapter 6 <05_cnn_transfer>`", 1),
    ("Chapters {doc}`8 <08_word_vectors>` and {doc}`9 <09_ulmfit>`", 0),
    ("chapters {doc}`8 <08_word_vectors>` and 9", 1), ("[Chapter 8](08_word_vectors.ipynb)", 0),
    ("[ch. 8](../notebooks/09_ulmfit.ipynb)", 1), ("see `chapter 3` in code", 0), ("chapter 7 of Goodfellow et al.", 0),
    ("{doc}`05_cnn_transfer`", 0), ("{doc}`chapter 2 <../book/setup>`", 1), ("{doc}`chapter 14 <14_missing>`", 1),
])
def test_chapter_mention_checker(text, n_problems):
    """The checker itself, on a notebook in notebooks/: right links pass, wrong or missing ones are caught."""
    page = ROOT / "notebooks" / "04_augmentation.ipynb"
    assert len(_check_prose(page, text, {}, False)) == n_problems, _check_prose(page, text, {}, False)


@pytest.mark.parametrize("text, n_problems", [
    ("[chapter 8](08_word_vectors.ipynb)", 0), ("{doc}`chapter 8 <08_word_vectors>`", 1),
    ("[chapter 8](08_word_vectors.html)", 1), ("see chapter 8", 1),
])
def test_chapter_mention_checker_in_outputs(text, n_problems):
    page = ROOT / "notebooks" / "04_augmentation.ipynb"
    assert len(_check_prose(page, text, {}, True)) == n_problems, _check_prose(page, text, {}, True)


# --- Clean committed outputs: finished progress bars, integers as integers, no stray plotting return values ------

WIDGET_VIEW, WIDGET_STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"
BAR_PCT, BAR_COUNT = re.compile(r"(\d+)%"), re.compile(r"(\d+)/(\d+)")
TEXT_BAR = re.compile(r"(\d+)%\|[^|\n]*\|\s*(\d+)/(\d+)")
STRAY = re.compile(r"^\[?(<matplotlib\.|<mpl_toolkits\.|Text\(|<Axes:|<AxesSubplot|<BarContainer|<ErrorbarContainer|"
                   r"<StemContainer|<matplotlib\.legend\.Legend|<Figure size \d+x\d+ with 0 Axes>)")
LIMITS = re.compile(r"^\(\s*-?[\d.]+(?:e[+-]?\d+)?,\s*-?[\d.]+(?:e[+-]?\d+)?\)$")
PLOT_CALL = re.compile(r"\b(set_[xy]lim|[xy]lim|axis|set_[xy]ticks|[xy]ticks)\(")


def _unescape(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]+>", "", html)).replace("\u2007", " ").replace("\xa0", " ")


def _bar_problem(label: str, value: float | None = None, total: float | None = None) -> str | None:
    """Why a progress bar reading `label` (and at value/total) is unfinished, or None when it shows 100 %."""
    pct, count = BAR_PCT.search(label), BAR_COUNT.search(label)
    if value is not None and total is not None and value < total:
        return f"bar at {value:g}/{total:g}"
    if pct and int(pct.group(1)) < 100:
        return f"shows {pct.group(0)}"
    if count and int(count.group(1)) < int(count.group(2)):
        return f"shows {count.group(0)}"
    return None


def unfinished_progress_bars(nb: dict) -> list[str]:
    """tqdm bars saved below 100 %: widgets (as their saved state renders them) and text bars in streams."""
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    model = lambda ref: state.get(str(ref).replace("IPY_MODEL_", ""), {})  # noqa: E731
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            box = model(view["model_id"]) if view else {}
            if box.get("model_name") == "HBoxModel":
                kids = [model(k) for k in box["state"].get("children", [])]
                bars = [k["state"] for k in kids if k.get("model_name") in ("FloatProgressModel", "IntProgressModel")]
                if bars:
                    label = " ".join(_unescape(str(k["state"].get("value", ""))) for k in kids if k.get("model_name") == "HTMLModel")
                    why = _bar_problem(label, bars[0].get("value"), bars[0].get("max"))
                    why = why or ("ended in error" if bars[0].get("bar_style") == "danger" else None)
                    if why:
                        found.append(f"cell {i}: progress widget {' '.join(label.split())!r} {why}")
            if out["output_type"] == "stream":
                for line in "".join(out["text"]).split("\n"):
                    shown = line.split("\r")[-1]  # what a terminal (and Jupyter) leaves on screen
                    m = TEXT_BAR.search(shown)
                    if m and _bar_problem(m.group(0)):
                        found.append(f"cell {i}: text progress bar {shown.strip()!r} {_bar_problem(m.group(0))}")
    return found


class _Tables(HTMLParser):
    """Rows of cell texts of every <table> in an HTML output, and the header row."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"header": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]["rows"]:
            self.tables[-1]["rows"][-1].append(("".join(self._cell).strip(), tag))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


CONTINUOUS = re.compile(r"%|acc|loss|scale|\blr\b|rate|ratio|time|second|\(s\)|\bms\b|mean|std|score|prob", re.I)


def _float_integer_columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns whose every value is an integer written as a float ("7743.0"), counts being the usual case."""
    bad = []
    for j in range(max(map(len, rows), default=0)):
        values = [r[j] for r in rows if j < len(r) and r[j] not in ("", "NaN", "nan", "None", "<NA>", "—", "-")]
        name = header[j] if j < len(header) and header[j] else f"column {j + 1}"
        if CONTINUOUS.search(name):  # a float quantity that happens to be whole (50.0 %, a loss scale of 65536.0)
            continue
        if values and all(re.fullmatch(r"-?\d+\.0", v) for v in values) and any(abs(float(v)) >= 2 for v in values):
            bad.append(f"{name!r} shows {values[0]!r}")
    return bad


def float_integers_in_tables(nb: dict) -> list[str]:
    """HTML tables (DataFrames) and Markdown tables in outputs with a column of integers shown as floats."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                parser = _Tables()
                parser.feed("".join(data["text/html"]))
                for table in parser.tables:
                    head = [r for r in table["rows"] if r and all(tag == "th" for _, tag in r)]
                    body = [[text for text, _ in r] for r in table["rows"] if r and any(tag == "td" for _, tag in r)]
                    width = max((len(r) for r in head), default=0)  # several header rows: join them per column
                    header = [" ".join(r[j][0] for r in head if j < len(r) and r[j][0]).strip() for j in range(width)]
                    if header and body and len(header) < len(body[0]):  # pandas: the index has no header cell
                        header = [""] * (len(body[0]) - len(header)) + header
                    found += [f"cell {i}: table column {c}" for c in _float_integer_columns(header, body)]
            elif "text/markdown" in data:
                lines = [ln.strip() for ln in "".join(data["text/markdown"]).splitlines() if ln.strip().startswith("|")]
                rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
                rows = [r for r in rows if not all(re.fullmatch(r":?-+:?", c) for c in r)]
                if len(rows) > 1:
                    found += [f"cell {i}: table column {c}" for c in _float_integer_columns(rows[0], rows[1:])]
    return found


def stray_plot_return_values(nb: dict) -> list[str]:
    """Return values of plotting calls echoed as a cell's result: `[<matplotlib.lines.Line2D ...>]`,
    `Text(0.5, 1.0, '...')`, `<matplotlib.legend.Legend ...>`, `(0.0, 3.0)` from set_ylim, an empty figure."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        code = [ln for ln in "".join(cell.get("source", "")).splitlines() if ln.strip() and not ln.strip().startswith("#")]
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if out["output_type"] not in ("execute_result", "display_data") or any(k.startswith("image/") for k in data):
                continue
            text = "".join(data.get("text/plain", "")).strip()
            if STRAY.match(text) or (out["output_type"] == "execute_result" and LIMITS.match(text)
                                      and code and PLOT_CALL.search(code[-1])):
                found.append(f"cell {i}: {text[:70]!r} (end the line with `;` or assign it to `_`)")
    return found


FIGURE_CALL = re.compile(r"^(?!\s*def )(?!\s*#).*\b(plt\.(subplots|figure|subplot)\(|show_(images|filters|feature_maps)\(|\bplot_[a-z_]*\(|\.plot\()")


def figures_without_images(nb: dict) -> list[str]:
    """Cells that draw a figure but saved no image: a kernel started with MPLBACKEND=Agg has no inline backend, so
    the rendered page would silently lose every plot. Top-level `plt.subplots`/`plt.figure`/`show_*` calls count."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        outs = cell.get("outputs", [])
        has_image = any(k.startswith("image/") for o in outs for k in o.get("data", {}))
        bare = [o for o in outs if "".join(o.get("data", {}).get("text/plain", "")).startswith("<Figure size")
                and not any(k.startswith("image/") for k in o.get("data", {}))]
        top_level = [ln for ln in "".join(cell["source"]).splitlines() if not ln.startswith((" ", "\t"))]
        draws = any(FIGURE_CALL.search(ln) for ln in top_level)
        if bare or (draws and not has_image):
            found.append(f"cell {i} ({cell.get('id')}): draws a figure but saved no image (run the kernel without MPLBACKEND=Agg)")
    return found


def _offenders(check) -> list[str]:
    return [f"{nb.name} {p}" for nb in NOTEBOOKS for p in check(json.loads(nb.read_text()))]


def test_no_unfinished_progress_bars_in_committed_outputs():
    found = _offenders(unfinished_progress_bars)
    assert not found, f"{len(found)} progress bar(s) saved below 100 %:\n" + "\n".join(found)


def test_integers_shown_as_integers_in_tables():
    found = _offenders(float_integers_in_tables)
    assert not found, f"{len(found)} table column(s) of integers shown as floats (cast to int / Int64):\n" + "\n".join(found)


def test_every_drawn_figure_is_saved_as_an_image():
    found = _offenders(figures_without_images)
    assert not found, f"{len(found)} figure(s) missing from the committed outputs:\n" + "\n".join(found)


@pytest.mark.parametrize("source, outputs, n", [
    ("fig, ax = plt.subplots()\nax.plot([1, 2])", [], 1),
    ("fig, ax = plt.subplots()\nax.plot([1, 2])", [{"output_type": "display_data", "data": {"image/png": "x"}}], 0),
    ("def draw():\n    fig, ax = plt.subplots()", [], 0),
    ("x = 1", [{"output_type": "display_data", "data": {"text/plain": "<Figure size 640x480 with 1 Axes>"}}], 1),
])
def test_figure_checker(source, outputs, n):
    nb = {"metadata": {}, "cells": [{"cell_type": "code", "source": source, "outputs": outputs}]}
    assert len(figures_without_images(nb)) == n


def test_no_stray_plotting_return_values_in_outputs():
    found = _offenders(stray_plot_return_values)
    assert not found, f"{len(found)} stray return value(s) of plotting calls:\n" + "\n".join(found)


def _widget_nb(label: str, value: float, total: float) -> dict:
    kids = {"h1": {"model_name": "HTMLModel", "state": {"value": label.split("|")[0]}},
            "p": {"model_name": "FloatProgressModel", "state": {"value": value, "max": total}},
            "h2": {"model_name": "HTMLModel", "state": {"value": label.split("|")[1]}}}
    state = {"box": {"model_name": "HBoxModel", "state": {"children": [f"IPY_MODEL_{k}" for k in kids]}}, **kids}
    return {"metadata": {"widgets": {WIDGET_STATE: {"state": state}}},
            "cells": [{"cell_type": "code", "source": "", "outputs": [
                {"output_type": "display_data", "data": {WIDGET_VIEW: {"model_id": "box"}, "text/plain": "x"}}]}]}


def _result_nb(source: str, text: str, output_type: str = "execute_result", **data) -> dict:
    return {"metadata": {}, "cells": [{"cell_type": "code", "source": source,
                                       "outputs": [{"output_type": output_type, "data": {"text/plain": text, **data}}]}]}


@pytest.mark.parametrize("nb, n", [
    (_widget_nb("features:&nbsp;0%| 0/16 [00:00&lt;?, ?it/s]", 16, 16), 1), (_widget_nb("fit: 80%| 4/5", 5, 5), 1),
    (_widget_nb("fit: 100%| 5/5 [00:01<00:00]", 5, 5), 0), (_widget_nb("fit: 100%| 5/5", 3, 5), 1),
    ({"metadata": {}, "cells": [{"cell_type": "code", "source": "", "outputs": [
        {"output_type": "stream", "name": "stderr", "text": "run:  40%|████      | 2/5 [00:01<00:02]\rrun:  80%|████████  | 4/5\n"}]}]}, 1),
    ({"metadata": {}, "cells": [{"cell_type": "code", "source": "", "outputs": [
        {"output_type": "stream", "name": "stderr", "text": "run:  40%|████      | 2/5\rrun: 100%|██████████| 5/5 [00:02<00:00]\n"}]}]}, 0),
])
def test_progress_bar_checker(nb, n):
    assert len(unfinished_progress_bars(nb)) == n, unfinished_progress_bars(nb)


@pytest.mark.parametrize("html, n", [
    ("<table><thead><tr><th></th><th>n</th><th>acc</th></tr></thead><tbody><tr><th>0</th><td>7743.0</td><td>0.81</td></tr>"
     "<tr><th>1</th><td>NaN</td><td>1.0</td></tr></tbody></table>", 1),
    ("<table><thead><tr><th></th><th>n</th><th>acc</th></tr></thead><tbody><tr><th>0</th><td>7743</td><td>1.0</td></tr>"
     "<tr><th>1</th><td>12</td><td>1.0</td></tr></tbody></table>", 0),
])
def test_float_integer_checker(html, n):
    nb = _result_nb("df", "df", **{"text/html": html})
    assert len(float_integers_in_tables(nb)) == n, float_integers_in_tables(nb)
    md = "| n | acc |\n|---|---|\n| 7743.0 | 0.5 |\n| 12.0 | 0.7 |"
    assert len(float_integers_in_tables(_result_nb("x", "x", output_type="display_data", **{"text/markdown": md}))) == 1


@pytest.mark.parametrize("source, text, n", [
    ("ax.plot(x, y)", "[<matplotlib.lines.Line2D at 0x7f0>]", 1), ("plt.title('a')", "Text(0.5, 1.0, 'a')", 1),
    ("ax.legend()", "<matplotlib.legend.Legend at 0x7f1>", 1), ("ax.set_ylim(0, 3)", "(0.0, 3.0)", 1),
    ("a, b = 1.0, 2.0\na, b", "(1.0, 2.0)", 0), ("df.round(2)", "   a\n0  1", 0), ("ax.plot(x, y);", "", 0),
])
def test_stray_return_value_checker(source, text, n):
    assert len(stray_plot_return_values(_result_nb(source, text))) == n


@pytest.mark.parametrize("where", ["right", "below"])
def test_legend_outside_places_the_legend_beyond_the_axes(where):
    """utils.plots.legend_outside: the legend's box lies outside the axes, and the call returns nothing to echo."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils.plots import legend_outside

    fig, ax = plt.subplots()
    for i in range(4):
        ax.plot([0, 1], [i, i + 1], label=f"run {i}")
    assert legend_outside(ax, where) is None
    fig.canvas.draw()
    box, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert (box.x0 >= axes.x1) if where == "right" else (box.y1 <= axes.y0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"run {i}" for i in range(4)]
    plt.close(fig)
    with pytest.raises(ValueError, match="right"):
        legend_outside(ax, "left")


# --- The static explorer of chapter 2 (scripts/explorer_grid.py → book/_static/explorer/) -----------------------

EXPLORER = ROOT / "book" / "_static" / "explorer"


def _grid() -> dict:
    return json.loads((EXPLORER / "grid.json").read_text())


def test_explorer_grid_is_small_and_matches_its_script_copy():
    raw = (EXPLORER / "grid.json").read_text()
    assert len(raw.encode()) < 2_000_000 and (EXPLORER / "grid.js").stat().st_size < 2_100_000
    js = (EXPLORER / "grid.js").read_text()
    assert json.loads(js[js.index('["grid.json"]=') + len('["grid.json"]='):].rstrip().rstrip(";")) == json.loads(raw), \
        "grid.js is not the same data as grid.json: rerun scripts/explorer_grid.py"


def test_explorer_grid_covers_every_control_value_it_offers():
    """Every combination of the values a strategy's controls offer has a run, so the page never finds a hole."""
    from utils import explorer

    grid = _grid()
    assert list(grid["strategies"]) == list(explorer.STRATEGIES)
    missing = []
    for name, info in grid["strategies"].items():
        a = info["axes"]
        for dataset, labels, k, lr_mult, epochs in itertools.product(a["dataset"], a["labels_per_class"], a["k"], a["lr_mult"], a["epochs"]):
            if not any(r["strategy"] == name and r["dataset"] == dataset and r["labels_per_class"] == labels and r["k"] == k
                       and r["lr_mult"] == lr_mult and (r["epochs"] >= epochs if info["prefix_epochs"] else r["epochs"] == epochs)
                       for r in grid["runs"]):
                missing.append((name, dataset, labels, k, lr_mult, epochs))
    assert not missing, f"{len(missing)} offered choices have no run, e.g. {missing[:5]}"
    d = grid["defaults"]
    assert all(d[key] in grid["strategies"][d["strategy"]]["axes"][key] for key in ("dataset", "labels_per_class", "epochs"))


def test_explorer_grid_summaries_are_computed_from_its_seeds():
    grid = _grid()
    for r in grid["runs"]:
        assert len(r["seeds"]) >= 3, f"{r['strategy']}: fewer than 3 seeds"
        for curves, summary in ((r["val"], r["val_summary"]), (r["test"], r["test_summary"])):
            assert len(curves) == len(r["seeds"]) and all(len(c) == r["epochs"] for c in curves)
            for e, values in enumerate(zip(*curves)):
                assert summary["mean"][e] == pytest.approx(sum(values) / len(values), abs=1e-4)
                assert summary["min"][e] == min(values) and summary["max"][e] == max(values)
                assert summary["sd"][e] == pytest.approx(statistics.stdev(values), abs=1e-4)
                assert all(0 <= v <= 1 for v in values)
        assert len(r["epoch_seconds"]) == r["epochs"] and r["trainable_params"] > 0 and r["n_train"] > 0


def test_run_strategy_scores_the_test_set_every_epoch(tmp_path, monkeypatch):
    """The grid's premise: run_strategy returns a per-epoch test curve, and the first epochs of a longer run
    are exactly a shorter run (constant learning rate, fixed seed)."""
    from utils import explorer

    monkeypatch.setenv("TRANSFER_BOOK_CACHE", str(tmp_path))
    tiny = {"dataset": "faces", "labels_per_class": 3, "progress": False, "seed": 1}
    long, short = explorer.run_strategy("top_block", epochs=3, **tiny), explorer.run_strategy("top_block", epochs=2, **tiny)
    assert len(long["test_curve"]) == 3 and long["test_curve"][-1] == long["test_acc"]
    assert long["val_curve"][:2] == short["val_curve"] and long["test_curve"][:2] == short["test_curve"]
    other_seed = explorer.run_strategy("top_block", epochs=3, **{**tiny, "seed": 2})
    assert other_seed["val_curve"] != long["val_curve"] or other_seed["test_curve"] != long["test_curve"], \
        "two seeds gave identical curves: the seed is not reaching the run"


def test_chapter_2_embeds_the_static_explorer_next_to_the_live_widget():
    nb = json.loads((ROOT / "notebooks" / "02_feature_extraction.ipynb").read_text())
    cells = nb["cells"]
    widget = next(i for i, c in enumerate(cells) if "explorer_widget()" in "".join(c["source"]))
    embed = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "static-explorer" in "".join(c["source"]))
    assert abs(embed - widget) <= 2, "the static explorer belongs next to the live widget"
    text = "".join(cells[embed]["source"])
    assert re.search(r"static.*precomputed|precomputed.*static", text, re.S | re.I) and re.search(r"Jupyter|Colab|Binder", text)
    grid = re.search(r'data-grid="([^"]+)"', text).group(1)
    script = re.search(r'<script src="([^"]+)"></script>', text).group(1)
    static = ROOT / "book" / "_static"  # html_static_path: _build/html/_static/ mirrors book/_static/
    for ref in (grid, script):
        assert ref.startswith("../_static/") and (static / ref.removeprefix("../_static/")).is_file(), ref
    vendor = EXPLORER / "vendor"
    for lib in ("vega", "vega-lite", "vega-embed"):
        assert (vendor / f"{lib}.min.js").stat().st_size > 10_000 and (vendor / f"LICENSE-{lib}.txt").is_file()
        assert "sourceMappingURL" not in (vendor / f"{lib}.min.js").read_text()[-300:]
