"""Internal utilities (NumPy / scikit-learn only): chunking, labels, tensors, ranges.

Nothing here is public API; image helpers live in :mod:`sklearn_ood.images`.
"""

__all__: list[str] = []
