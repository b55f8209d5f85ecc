"""The folds of out-of-fold calibration scores, one rule for every composite.

:class:`~sklearn_ood.LayerEnsembleDetector` and
:class:`~sklearn_ood.InputPreprocessingDetector` compute the calibration
scores of their in-distribution training rows out of fold: the rows of each
fold are scored by models fitted on the other folds. Both split the rows with
:func:`inlier_folds`, so ``cv`` and ``random_state`` mean the same in both.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, check_cv

__all__ = ["inlier_folds"]


def inlier_folds(cv, random_state, n_samples: int, y=None) -> list:
    """``(train, test)`` index pairs of the in-distribution rows.

    Parameters
    ----------
    cv : int, None, cross-validation generator or iterable
        An int ``k`` (None: 5) is ``StratifiedKFold(k, shuffle=True)`` on the
        class labels ``y`` when there are several classes with at least ``k``
        rows each, else ``KFold(k, shuffle=True)``, both with
        ``random_state``. A splitter (or an iterable of splits) is used as
        :func:`sklearn.model_selection.check_cv` returns it, its
        ``split(X, y)`` called on the ``n_samples`` rows.
    random_state : int, RandomState instance or None
        Shuffling of the folds of an int ``cv``.
    n_samples : int
        Number of in-distribution rows.
    y : ndarray of shape (n_samples,) or None, default=None
        Class labels of the rows.

    Returns
    -------
    folds : list of (ndarray, ndarray)
        Train and test indices of each fold.
    """
    placeholder = np.zeros((n_samples, 1))
    if cv is None or isinstance(cv, Integral):
        k = 5 if cv is None else int(cv)
        if n_samples < k:
            raise ValueError(
                f"At least cv={k} in-distribution samples are needed for the "
                f"out-of-fold scores; got {n_samples}."
            )
        if y is not None:
            _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
            if counts.size > 1 and counts.min() >= k:
                splitter = StratifiedKFold(k, shuffle=True, random_state=random_state)
                return list(splitter.split(placeholder, codes))
        splitter = KFold(k, shuffle=True, random_state=random_state)
    else:
        splitter = check_cv(cv)
    return list(splitter.split(placeholder, y))
