"""make_ood_pipeline: the recommended image pipeline, against the recipe by hand.

The recipe (``benchmarks/bench_fashion_recipe.py``): features averaged over
each image and its mirror image, a Ledoit-Wolf Mahalanobis detector and a
cosine 2-NN detector fitted on them, each detector's score standardised by the
mean and standard deviation of its own leave-one-out calibration scores, the
two averaged. Computed here step by step with the public detectors and an
extractor without test-time augmentation.
"""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_ood import (
    KNNDetector,
    LayerEnsembleDetector,
    MahalanobisDetector,
    TorchFeatureExtractor,
    make_ood_pipeline,
)
from tests._calibration import conformal_threshold

EPS64 = float(np.finfo(np.float64).eps)


def _backbone(seed=0):
    """A small convolutional network whose output (pooled, flattened) is the
    feature vector (no classifier, so no pre-processing warning)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )


def _images(n, seed):
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 256, size=(n, 10, 10)).astype(np.uint8)
    X[:, :, :4] //= 3  # darker on the left: the mirror changes the features
    return X


def test_default_pipeline_is_the_documented_recipe():
    pipe = make_ood_pipeline(contamination=0.1)
    assert [name for name, _ in pipe.steps] == ["features", "detector"]
    ext, det = pipe.named_steps["features"], pipe.named_steps["detector"]
    assert isinstance(ext, TorchFeatureExtractor)
    assert ext.model == "efficientnet_lite0"
    assert ext.tta == "hflip" and ext.layers is None and ext.image_size == "auto"
    assert isinstance(det, LayerEnsembleDetector)
    maha, knn = det.detector
    assert isinstance(maha, MahalanobisDetector) and isinstance(knn, KNNDetector)
    assert maha.covariance == "ledoit_wolf" and maha.mode == "marginal"
    assert (knn.n_neighbors, knn.metric) == (2, "cosine")
    assert (det.combiner, det.cv) == ("mean_standardized", "calibration")
    assert det.contamination == 0.1
    with pytest.raises(ValueError, match="'contamination' parameter"):
        make_ood_pipeline(contamination=0.7)
    with pytest.raises(ValueError, match="'tta' parameter"):
        make_ood_pipeline(tta="vflip")
    with pytest.raises(ValueError, match="'device' parameter"):
        make_ood_pipeline(device="tpu")


def test_pipeline_scores_equal_the_recipe_by_hand():
    X, X_test = _images(80, seed=0), _images(12, seed=1)
    pipe = make_ood_pipeline(
        _backbone(), image_size=None, device="cpu", contamination=0.05
    ).fit(X)

    # Features: the extractor without tta on the images and their mirrors. No
    # resize: the same float32 operations as tta's (tests/test_tta.py).
    plain = TorchFeatureExtractor(_backbone(), image_size=None, device="cpu").fit(X)

    def features(Z):
        return (plain.transform(Z) + plain.transform(Z[:, :, ::-1].copy())) / 2

    F, F_test = features(X), features(X_test)
    np.testing.assert_array_equal(pipe[:-1].transform(X_test), F_test)
    maha = MahalanobisDetector(covariance="ledoit_wolf").fit(F)
    knn = KNNDetector(n_neighbors=2, metric="cosine").fit(F)

    def standardised(det, s):
        cal = det.calibration_scores_
        return (s - cal.mean()) / cal.std()

    expected = (
        standardised(maha, maha.score_samples(F_test))
        + standardised(knn, knn.score_samples(F_test))
    ) / 2
    cal = (
        standardised(maha, maha.calibration_scores_)
        + standardised(knn, knn.calibration_scores_)
    ) / 2
    # Same inputs, same float64 operations; the means and standard deviations
    # of n calibration scores may be summed in another order (a strided
    # column): (n - 1) eps64 relative each (Higham, eq. 3.5), a few n eps64 of
    # the largest standardised term in all.
    terms = max(np.abs(expected).max(), np.abs(cal).max()) + 1
    tol = 8 * len(X) * EPS64 * terms
    np.testing.assert_allclose(pipe.score_samples(X_test), expected, rtol=0, atol=tol)
    det = pipe.named_steps["detector"]
    np.testing.assert_allclose(det.calibration_scores_, cal, rtol=0, atol=tol)
    assert det.offset_ == conformal_threshold(det.calibration_scores_, 0.05)
    np.testing.assert_array_equal(
        pipe.predict(X_test), np.where(pipe.decision_function(X_test) < 0, -1, 1)
    )
    # fit_predict flags exactly floor(0.05 * 80) = 4 training images
    assert (
        np.sum(
            make_ood_pipeline(
                _backbone(), image_size=None, device="cpu", contamination=0.05
            ).fit_predict(X)
            == -1
        )
        == 4
    )
