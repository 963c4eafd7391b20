"""One progress bar for the whole package: `tqdm.auto`, live while running, never saved part-way in a notebook."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """`tqdm.auto.tqdm(iterable, **kwargs)` that pushes its final count to the display before it closes.

    tqdm redraws at most every `mininterval` seconds, so a notebook widget closed right after the last update keeps
    the previous drawing ("99 % 134/135") in the saved notebook; refreshing on close shows the true end state.
    """
    from tqdm.auto import tqdm

    bar = tqdm(iterable, **kwargs)
    close = bar.close

    def close_shown() -> None:
        if not bar.disable and getattr(bar, "n", None) is not None and not getattr(bar, "_closed_shown", False):
            bar._closed_shown = True
            bar.refresh()
        close()

    bar.close = close_shown
    return bar
