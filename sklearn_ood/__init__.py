"""sklearn-ood: out-of-distribution and anomaly detection with a scikit-learn API.

Every detector follows scikit-learn's outlier contract (see
:mod:`sklearn_ood.base`): ``score_samples`` higher = more normal,
``decision_function = score_samples - offset_``, ``predict`` in {+1, -1}.
"""

from ._center_loss import CenterLossDetector
from ._combiners import NonNegativeLogisticRegression, lee_logistic_regression
from ._ensemble import LayerEnsembleDetector
from ._feature_extraction import TorchFeatureExtractor
from ._geometric import DirichletTransformDetector
from ._input_preprocessing import InputPreprocessingDetector
from ._mahalanobis import MahalanobisDetector
from ._metric_learning import MetricLearningDetector
from ._neighbors import KNNDetector
from .base import AUTO_CONTAMINATION
from .pipelines import make_ood_pipeline

__version__ = "0.1.0.dev0"

__all__ = [
    "AUTO_CONTAMINATION",
    "CenterLossDetector",
    "DirichletTransformDetector",
    "InputPreprocessingDetector",
    "KNNDetector",
    "LayerEnsembleDetector",
    "MahalanobisDetector",
    "MetricLearningDetector",
    "NonNegativeLogisticRegression",
    "TorchFeatureExtractor",
    "__version__",
    "lee_logistic_regression",
    "make_ood_pipeline",
]
