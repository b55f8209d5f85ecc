"""Row chunking that keeps working memory within scikit-learn's budget."""

from __future__ import annotations

from sklearn import get_config

__all__ = ["_chunk_rows"]


def _chunk_rows(n_rows: int, row_bytes: int) -> int:
    """Rows per chunk so that one chunk's working arrays fit in ``working_memory``.

    ``row_bytes`` is the memory one row of the chunk needs (all temporaries);
    the budget is scikit-learn's ``working_memory`` setting in MiB (default
    1024, see :func:`sklearn.config_context`). At least one row is returned.
    """
    budget = get_config()["working_memory"] * (2**20)
    return int(max(1, min(n_rows, budget // max(row_bytes, 1))))
