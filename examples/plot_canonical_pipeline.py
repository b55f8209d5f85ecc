"""
=====================================================
The canonical pipeline: pretrained features, detector
=====================================================

The usual way to detect out-of-distribution (OOD) images with sklearn-ood is a
scikit-learn :class:`~sklearn.pipeline.Pipeline` of two steps:

1. :class:`~sklearn_ood.TorchFeatureExtractor` turns images into feature
   vectors with a pretrained network (here the built-in ImageNet-pretrained
   EfficientNet-Lite0, which loads offline);
2. a detector, here :class:`~sklearn_ood.MahalanobisDetector`, models the
   features of the normal images and scores new ones.

The pipeline is then an outlier detector like
:class:`~sklearn.ensemble.IsolationForest`: ``score_samples`` is higher for more
normal images, ``decision_function`` is negative for outliers and ``predict``
returns +1 (inlier) or -1 (outlier).

The task is Fashion-MNIST one-vs-rest, the protocol of Golan & El-Yaniv (2018)
and Bergman et al. (2020, DN2): fit on the images of one class, flag the images
of the nine others. To run in seconds on a CPU, this example uses 500 training
images, 1,000 test images and 48-pixel network inputs (the benchmarks in
``benchmarks/`` use the full data).
"""

# %%
# Data
# ----
# Fashion-MNIST is read from its IDX files (the Debian package
# ``dataset-fashion-mnist`` installs them; see
# :func:`~sklearn_ood.datasets.load_fashion_mnist`).
# :func:`~sklearn_ood.datasets.one_vs_rest_split` keeps the training images of
# the normal class and labels the test images +1 (normal) or -1 (OOD).
import numpy as np

from sklearn_ood.datasets import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    one_vs_rest_split,
)

X_train, y_train = load_fashion_mnist(subset="train")
X_test, y_test = load_fashion_mnist(subset="test")
normal = 7  # "Sneaker"
X_fit, _, X_eval, y_eval = one_vs_rest_split(
    X_train, y_train, X_test, y_test, normal, n_train=500, n_test=1000, random_state=0
)
print(f"normal class: {FASHION_MNIST_CLASSES[normal]!r}")
print(f"fit on {X_fit.shape} uint8 images")
print(f"evaluate on {np.sum(y_eval == 1)} normal and {np.sum(y_eval == -1)} OOD images")

# %%
# The pipeline
# ------------
# The extractor reads the backbone's ``pretrained_cfg`` for its pre-processing
# (bicubic resize and centre crop, normalisation); ``image_size`` sets the
# network input. Grey images are replicated to three channels. The detector
# uses Ledoit-Wolf shrinkage, a good default when there are fewer images than
# features (500 images, 1,280 features).
from sklearn.pipeline import make_pipeline

from sklearn_ood import MahalanobisDetector, TorchFeatureExtractor

pipe = make_pipeline(
    TorchFeatureExtractor("efficientnet_lite0", image_size=48, device="cpu"),
    MahalanobisDetector(covariance="ledoit_wolf"),
)
pipe.fit(X_fit)

# %%
# Scores and metrics
# ------------------
# :func:`~sklearn_ood.metrics.ood_report` prints the usual OOD metrics. It
# takes ``score_samples`` as they are (higher = more normal) and labels +1/-1.
from sklearn_ood.metrics import ood_report

scores = pipe.score_samples(X_eval)
print(ood_report(y_eval, {"EfficientNet-Lite0 + Mahalanobis": scores}))

# %%
# Decisions
# ---------
# ``contamination="auto"`` puts ``offset_`` at the 2.5th percentile of the
# training scores computed without memorising each image (leave-one-out or
# out-of-fold), so about 2.5% of new normal images are flagged. ``predict`` is
# ``+1`` where ``decision_function >= 0``.
pred = pipe.predict(X_eval)
print(f"offset_ = {pipe[-1].offset_:.1f}")
print(f"normal images flagged: {np.mean(pred[y_eval == 1] == -1):.1%}")
print(f"OOD images flagged:    {np.mean(pred[y_eval == -1] == -1):.1%}")

# %%
# Where the threshold falls
# -------------------------
# :class:`~sklearn_ood.plotting.ScoreHistogramDisplay` draws the score
# distributions of both groups and the detector's threshold (``offset_``), with
# the rejected side shaded. Mahalanobis scores of OOD images have a long tail
# (down to tens of thousands below the normal images): the x axis covers the
# normal images and the threshold, and the count of scores beyond it is
# written under the axis (``score_range=None`` shows all scores).
import matplotlib.pyplot as plt

from sklearn_ood.plotting import ScoreHistogramDisplay

disp = ScoreHistogramDisplay.from_estimator(pipe, X_eval, y_eval, bins=40)
disp.ax_.set_title(f"Fashion-MNIST, normal class {FASHION_MNIST_CLASSES[normal]!r}")
plt.show()
