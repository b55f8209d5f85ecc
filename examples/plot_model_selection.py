"""
==========================================================
Choosing a detector and its threshold with known OOD data
==========================================================

The scorers of :mod:`sklearn_ood.metrics` plug into scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV` and
:class:`~sklearn.model_selection.RandomizedSearchCV`: they read
``score_samples`` (higher = more normal) and take labels where ``-1`` marks an
out-of-distribution (OOD) sample and any other label an in-distribution one.

Here the in-distribution data are the digits 0-4 of scikit-learn's 8x8 digits
(64 pixel features) and the OOD data the digits 5-9. A validation split holds
known OOD samples; it selects the ``mode`` and principal ``components`` of a
:class:`~sklearn_ood.MahalanobisDetector` and the ``n_neighbors`` of a
:class:`~sklearn_ood.KNNDetector`. The decision threshold is then set with
:class:`~sklearn_ood.model_selection.TunedThresholdDetectorCV`, either for a
target share of accepted in-distribution data (no OOD sample needed) or to
maximise the detection accuracy on the validation OOD samples.
"""

# %%
# Data: a training split without OOD samples, a validation split with some
# ------------------------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import (
    GridSearchCV,
    PredefinedSplit,
    RandomizedSearchCV,
    train_test_split,
)

from sklearn_ood import KNNDetector, MahalanobisDetector
from sklearn_ood.metrics import ood_report, tnr_at_95_tpr_scorer
from sklearn_ood.model_selection import TunedThresholdDetectorCV

X, digit = load_digits(return_X_y=True)
X = X / 16.0
is_in = digit < 5
X_in, y_in = X[is_in], digit[is_in]
X_ood = X[~is_in]

X_train, X_rest, y_train, y_rest = train_test_split(
    X_in, y_in, test_size=0.5, stratify=y_in, random_state=0
)
X_val_in, X_test_in = X_rest[: len(X_rest) // 2], X_rest[len(X_rest) // 2 :]
X_val_ood, X_test_ood = X_ood[:300], X_ood[300:]

# Rows of the search: training rows (fit only) then validation rows (score
# only). Validation inliers keep their digit, validation OOD rows get -1.
X_search = np.r_[X_train, X_val_in, X_val_ood]
y_search = np.r_[y_train, y_rest[: len(X_val_in)], -np.ones(len(X_val_ood), int)]
test_fold = np.r_[np.full(len(X_train), -1), np.zeros(len(X_val_in) + 300, int)]
validation = PredefinedSplit(test_fold)

# %%
# Grid search with an OOD scorer
# ------------------------------
# Each candidate is fitted on the training rows (detectors leave rows labelled
# -1 out of their fit; here there are none) and scored on the validation rows
# by the TNR at 95% TPR. ``"tied"`` uses the digit labels (Lee et al.);
# ``components=(k, None)`` drops the ``k`` leading principal components
# (Kamoi & Kobayashi's partial distance); many border pixels are nearly
# constant, which a shrunk covariance (``"ledoit_wolf"``) copes with better.
maha_search = GridSearchCV(
    MahalanobisDetector(),
    {
        "mode": ["marginal", "tied"],
        "components": [None, (5, None), (0, 10)],
        "covariance": ["empirical", "ledoit_wolf"],
    },
    scoring=tnr_at_95_tpr_scorer,
    cv=validation,
).fit(X_search, y_search)
knn_search = RandomizedSearchCV(
    KNNDetector(),
    {"n_neighbors": [1, 2, 3, 5, 10, 20], "metric": ["sqeuclidean", "cosine"]},
    n_iter=6,
    scoring=tnr_at_95_tpr_scorer,
    cv=validation,
    random_state=0,
).fit(X_search, y_search)

for name, search in [("Mahalanobis", maha_search), ("kNN", knn_search)]:
    print(f"{name}: best {search.best_params_}, TNR@95 {search.best_score_:.3f}")
    for params, score in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"]
    ):
        print(f"    {params}: {score:.3f}")

# %%
# Test metrics of the two selected detectors (refitted on the search data;
# the -1 rows are left out of the fit).
X_test = np.r_[X_test_in, X_test_ood]
y_test = np.r_[np.ones(len(X_test_in), int), -np.ones(len(X_test_ood), int)]
print(
    ood_report(
        y_test,
        {
            "Mahalanobis": maha_search.best_estimator_.score_samples(X_test),
            "kNN": knn_search.best_estimator_.score_samples(X_test),
        },
    )
)

# %%
# Choosing the threshold
# ----------------------
# Without OOD samples, the threshold is the 5% quantile of the *out-of-fold*
# scores of the training data, so that about 95% of new in-distribution data
# is accepted. The in-sample quantile would be far too strict for a
# nearest-neighbour detector, which has seen its training samples (with one
# neighbour their in-sample distance is 0). With the validation OOD samples
# (``y == -1``) the threshold maximises the detection accuracy
# ``(TPR + TNR) / 2`` of the out-of-fold scores instead.
best = knn_search.best_estimator_
in_sample = np.quantile(best.score_samples(X_search[y_search != -1]), 0.05)
at_tpr = TunedThresholdDetectorCV(best, target_tpr=0.95, random_state=0)
at_tpr.fit(X_train, y_train)
tuned = TunedThresholdDetectorCV(best, scoring="detection_accuracy", random_state=0)
tuned.fit(X_search, y_search)

scores = tuned.score_samples(X_test)
thresholds = {
    "in-sample 5% quantile": in_sample,
    "out-of-fold, TPR 0.95": at_tpr.best_threshold_,
    "max detection accuracy": tuned.best_threshold_,
}
for name, threshold in thresholds.items():
    accepted = scores >= threshold
    tpr = accepted[y_test == 1].mean()
    tnr = 1.0 - accepted[y_test == -1].mean()
    print(f"{name:>24}: threshold {threshold:8.4f}, test TPR {tpr:.3f}, TNR {tnr:.3f}")

# %%
# The test scores and the thresholds.
bins = np.linspace(np.percentile(scores, 1), scores.max(), 50)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(scores[y_test == 1], bins=bins, alpha=0.6, label="digits 0-4 (in)")
ax.hist(scores[y_test == -1], bins=bins, alpha=0.6, label="digits 5-9 (OOD)")
for (name, threshold), style in zip(thresholds.items(), [":", "--", "-"]):
    ax.axvline(threshold, color="k", ls=style, label=name)
ax.set_xlabel("kNN score_samples (higher = more normal)")
ax.set_ylabel("test samples")
ax.set_ylim(top=1.6 * ax.get_ylim()[1])  # room for the legend above the bars
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()
