"""Repository-wide pytest hooks (tests/conftest.py holds the unit-test fixtures)."""
from __future__ import annotations

# nbval waits only 5 s for each output message after a cell finishes. On a loaded 2-core CI machine a cell that
# drew many progress bars can take longer to flush them, which failed a correct notebook. Allow a minute; a cell
# that really hangs is still stopped by --nbval-cell-timeout.
NBVAL_OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's notebook-cell items
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT_S
