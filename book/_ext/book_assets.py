"""Sphinx hooks for the reader's book, loaded through _config.yml (sphinx: local_extensions)."""
from __future__ import annotations


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated <script> entries from every page.

    Sphinx 7.4 re-reads extensions' scripts when it initialises the HTML builder, storing an inline script once with
    filename None and once with '' — two "different" entries. Two copies of sphinx-thebe's `const THEBE_JS_URL = ...`
    make the second a SyntaxError in the console of every page (tests/site fails on console errors).
    """
    seen, kept = set(), []
    for js in context.get("script_files", []):
        key = (getattr(js, "filename", js) or "", tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", dedupe_scripts, priority=900)  # after the other extensions have added theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
