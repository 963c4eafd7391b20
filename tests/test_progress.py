"""utils.progress: a bar closed right after its last update must show the final count, not the last throttled one."""
import io

import pytest

from utils.progress import progress_bar


def test_notebook_bar_shows_its_final_count_when_closed_fast(monkeypatch):
    pytest.importorskip("ipywidgets")
    import tqdm.auto
    import tqdm.notebook

    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.notebook.tqdm)  # what a Jupyter kernel gets
    seen = {}
    with progress_bar(total=135, mininterval=1e9, leave=False) as bar:  # throttled: only the first draw happens
        for _ in range(135):
            bar.update()
        seen["before close"] = bar.container.children[1].value
    assert seen["before close"] < 135, "the test needs a throttled bar to mean anything"
    assert bar.container.children[1].value == 135


def test_iterable_form_and_disabled_bar():
    assert list(progress_bar(range(4), file=io.StringIO())) == [0, 1, 2, 3]
    with progress_bar(total=2, disable=True) as bar:
        bar.update(2)
