"""The one registry of test instances and expected check failures.

Every public estimator of sklearn-ood is discovered automatically
(:func:`all_estimators`: the classes exported through the ``__all__`` of the
public modules). :data:`INSTANCES` gives the small, fast instances the common
tests run (scikit-learn's ``parametrize_with_checks`` and the contract tests of
``tests/test_common.py``, the property tests of ``tests/test_properties.py``);
``tests/test_common.py`` fails when a discovered estimator has none, so a new
estimator cannot ship untested. Each expected failure has its reason written
once, in :data:`REASONS`.

(scikit-learn's and imbalanced-learn's registries live inside their packages;
this one lives with the tests because it imports every estimator, and the
package's ``utils`` are the bottom layer that imports none of them.)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

import sklearn_ood

REASONS = {
    "memorised": (
        "predict on the training rows scores rows the model memorised; "
        "calibration (offset_, fit_predict) uses scores the model did not "
        "memorise (leave-one-out / out-of-fold / held out), so predict(X) on the "
        "training rows flags fewer than `contamination` (as LocalOutlierFactor "
        "with novelty=True)"
    ),
    "fit_predict": (
        "the check asserts fit_predict(X) == fit(X).predict(X); fit_predict flags "
        "exactly floor(contamination n) training rows by their calibration scores "
        "(tested in tests/test_common.py::test_fit_predict_share), while predict "
        "scores memorised rows"
    ),
    "cross_conformal_step": (
        "with method='cross' score_samples is a p-value, a step function of the "
        "detector's scores: a training row scored exactly at its own calibration "
        "score changes step with the last-bit BLAS rounding of the batch"
    ),
    "float32": (
        "float32 features (TorchFeatureExtractor's output): BLAS rounding depends "
        "on the number of rows multiplied at once, so results on a subset differ "
        "in the last bits; the bound is tested in tests/test_properties.py"
    ),
}

#: Checks every detector with calibration scores is expected to fail.
CALIBRATED = {
    "check_outliers_train": REASONS["memorised"],
    "check_outliers_fit_predict": REASONS["fit_predict"],
}
#: Threshold wrappers have no ``contamination``: only the fit_predict check.
THRESHOLD_WRAPPER = {"check_outliers_fit_predict": REASONS["fit_predict"]}


def all_estimators() -> list[type]:
    """Every estimator class exported by a public module of sklearn_ood."""
    found = {}
    modules = ["sklearn_ood"] + [
        info.name
        for info in pkgutil.walk_packages(sklearn_ood.__path__, "sklearn_ood.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    for name in modules:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and obj.__module__.startswith("sklearn_ood")
                and not inspect.isabstract(obj)
                and not attr.startswith("Base")
            ):
                found[obj.__qualname__] = obj
    return [found[k] for k in sorted(found)]


def _instances():
    import torch

    from sklearn_ood import (
        CenterLossDetector,
        DirichletTransformDetector,
        InputPreprocessingDetector,
        KNNDetector,
        LayerEnsembleDetector,
        MahalanobisDetector,
        MetricLearningDetector,
        NonNegativeLogisticRegression,
        TorchFeatureExtractor,
    )
    from sklearn_ood.conformal import ConformalDetector
    from sklearn_ood.model_selection import (
        FixedThresholdDetector,
        TunedThresholdDetectorCV,
    )
    from sklearn_ood.parallel import ParallelPostFit

    return {
        MahalanobisDetector: [
            MahalanobisDetector(),
            MahalanobisDetector(mode="tied"),
            MahalanobisDetector(mode="per_class"),
            MahalanobisDetector(mode="partial", components=(1, None)),
            MahalanobisDetector(mode="tied", components=(0, 1), contamination=0.1),
            MahalanobisDetector(covariance="ledoit_wolf", contamination=0.2),
            MahalanobisDetector(covariance="identity"),
        ],
        KNNDetector: [
            KNNDetector(),
            KNNDetector(n_neighbors=1, metric="euclidean", aggregation="kth"),
            KNNDetector(
                n_neighbors=3, metric="cosine", aggregation="sum", contamination=0.1
            ),
        ],
        LayerEnsembleDetector: [
            LayerEnsembleDetector(),
            LayerEnsembleDetector(
                KNNDetector(), feature_groups=[[0], [-1]], cv=3, random_state=0
            ),
            # make_ood_pipeline's detector: two detectors on the same features,
            # standardised by their own leave-one-out calibration scores
            LayerEnsembleDetector(
                [
                    MahalanobisDetector(covariance="ledoit_wolf"),
                    KNNDetector(metric="cosine"),
                ],
                combiner="mean_standardized",
                cv="calibration",
            ),
        ],
        InputPreprocessingDetector: [
            InputPreprocessingDetector(
                TorchFeatureExtractor(torch.nn.Identity(), device="cpu"),
                MahalanobisDetector(),
                epsilon=0.01,
            ),
            InputPreprocessingDetector(
                TorchFeatureExtractor(torch.nn.Identity(), device="cpu"),
                LayerEnsembleDetector(KNNDetector()),
                epsilon=0.01,
                cv=3,
            ),
        ],
        FixedThresholdDetector: [
            FixedThresholdDetector(MahalanobisDetector()),
            FixedThresholdDetector(MahalanobisDetector(), target_tpr=0.9),
            FixedThresholdDetector(MahalanobisDetector(mode="tied"), threshold=-3.0),
        ],
        TunedThresholdDetectorCV: [
            TunedThresholdDetectorCV(MahalanobisDetector(), random_state=0),
            TunedThresholdDetectorCV(MahalanobisDetector(), cv=3, target_tpr=0.8),
        ],
        ConformalDetector: [
            ConformalDetector(MahalanobisDetector(), random_state=0),
            ConformalDetector(KNNDetector(), method="cross", n_folds=3, random_state=0),
        ],
        NonNegativeLogisticRegression: [NonNegativeLogisticRegression()],
        ParallelPostFit: [ParallelPostFit(MahalanobisDetector())],
        # A network without convolutions takes 2-D input: every check applies.
        TorchFeatureExtractor: [TorchFeatureExtractor(torch.nn.Tanh(), device="cpu")],
        # Image detectors: scikit-learn runs the checks their tags allow.
        DirichletTransformDetector: [DirichletTransformDetector()],
        CenterLossDetector: [CenterLossDetector()],
        MetricLearningDetector: [MetricLearningDetector()],
    }


INSTANCES = _instances()


def expected_failed_checks(estimator) -> dict[str, str]:
    """The checks ``estimator`` is expected to fail, with their reasons."""
    params = estimator.get_params(deep=False)
    failed = {}
    if "contamination" in params:
        failed.update(CALIBRATED)
    elif hasattr(estimator, "p_values"):
        failed.update(THRESHOLD_WRAPPER)
    if type(estimator).__name__ == "InputPreprocessingDetector":
        failed["check_methods_subset_invariance"] = REASONS["float32"]
    if params.get("method") == "cross":
        failed["check_methods_subset_invariance"] = REASONS["cross_conformal_step"]
    return failed


def instances() -> list:
    """Every registered test instance."""
    return [est for group in INSTANCES.values() for est in group]


def two_d_detectors() -> list:
    """Registered detectors that take feature vectors and have ``contamination``."""
    out = []
    for est in instances():
        tags = est.__sklearn_tags__()
        if (
            tags.input_tags.two_d_array
            and hasattr(est, "score_samples")
            and "contamination" in est.get_params(deep=False)
        ):
            out.append(est)
    return out
