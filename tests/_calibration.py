"""An independent statement of the calibration rule, for tests.

``offset_`` is the ``k``-th smallest calibration score with
``k = floor(c * (n + 1))`` (at least 1): then ``score < offset_`` exactly when
the conformal p-value ``(1 + #{cal <= score}) / (n + 1)`` is at most ``c``.
Written here by counting, independently of ``sklearn_ood.base``.
"""

import numpy as np


def conformal_threshold(calibration_scores, contamination):
    """Smallest calibration score ``t`` such that fewer than ``c (n + 1)`` scores
    lie strictly below it, counted by brute force."""
    cal = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())
    n = cal.size
    c = 0.025 if contamination == "auto" else float(contamination)
    # p-value of a hypothetical new score s = cal[j] - tiny: (1 + j) / (n + 1).
    flagged = [j for j in range(n) if (1 + j) / (n + 1) <= c + 1e-12]
    k = max(len(flagged), 1)
    return cal[k - 1]
