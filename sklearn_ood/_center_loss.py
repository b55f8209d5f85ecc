"""Center loss + Mahalanobis distance detector (Varedzhan, Yurkov, Ushenin 2021).

A classifier network is trained with softmax cross-entropy plus Wen et al.'s
center loss; OOD detection then uses per-class Gaussian models of its deep
features (the paper's semi-supervised detector) or a binary MLP head trained on
known anomalies (the paper's supervised detector).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._mahalanobis import MahalanobisDetector
from ._network_base import BaseNetworkDetector
from .base import CalibrationWarning
from .nn._architectures import LeNet, MLPHead
from .nn._losses import CenterLoss
from .nn._training import TrainingHistory, build_module

__all__ = ["CenterLossDetector"]


def _split_output(out) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a network output and return ``(features, logits)``."""
    if (
        not isinstance(out, (tuple, list))
        or len(out) != 2
        or not all(isinstance(t, torch.Tensor) for t in out)
    ):
        raise TypeError(
            "The 'network' of CenterLossDetector must return a tuple "
            "(features, logits) of two tensors from forward(); got "
            f"{type(out).__name__} instead."
        )
    features, logits = out
    if features.ndim != 2 or logits.ndim != 2:
        raise ValueError(
            "The 'network' of CenterLossDetector must return features of shape "
            "(n_samples, n_features) and logits of shape (n_samples, n_classes); "
            f"got shapes {tuple(features.shape)} and {tuple(logits.shape)}."
        )
    return features, logits


class CenterLossDetector(BaseNetworkDetector):
    """OOD detector of Varedzhan et al. (2021): center loss and Mahalanobis distance.

    A classifier network (by default LeNet with max-pooling and ReLU) is trained
    on labelled in-distribution images with ``L = CE + center_loss_weight * L_C``,
    ``L_C`` the center loss of Wen et al. (2016). Then, on the deep features
    (the network's last hidden layer):

    - ``head="mahalanobis"`` (the paper's semi-supervised detector): a mean and
      a covariance per class (:class:`MahalanobisDetector` with
      ``mode="per_class"``, stored in ``mahalanobis_``), the distance
      ``D_c(x) = sqrt((f - mu_c)' S_c^-1 (f - mu_c))`` and per-class thresholds
      ``theta_c``, the ``quantile`` (97.5%) percentile of ``D_c`` over the
      training samples of class ``c``. The paper calls ``x`` normal iff
      ``D_c(x) <= theta_c`` for at least one class ``c`` (the OR rule).
    - ``head="mlp"`` (the paper's supervised detector): an MLP head (256, 256,
      1; ReLU; sigmoid) trained with binary cross-entropy on the deep features of
      the in-distribution samples (target 1) against those of the samples
      labelled ``-1`` in ``y`` (target 0), the network being frozen.

    Parameters
    ----------
    network : torch.nn.Module subclass, torch.nn.Module instance or None, \
default=None
        The classifier. Its ``forward(x)`` must return a tuple
        ``(features, logits)``: ``features`` of shape ``(n, d)`` are the deep
        features the detector models, ``logits`` of shape ``(n, n_classes)``
        feed the cross-entropy (softmax applied by the loss). ``None`` builds
        :class:`~sklearn_ood.nn.LeNet` (max-pooling, ReLU, 84-d ReLU features);
        a ``LeNet`` subclass gets the same arguments derived from the data
        (``in_channels``, ``num_classes``, ``input_size``), overridden by
        ``network_kwargs``. Another class is called with ``network_kwargs``
        only (give it the number of classes); an instance is deep-copied and
        never modified.
    network_kwargs : dict, default=None
        Keyword arguments of the network class (e.g. ``{"feature_dim": 32}``).
    center_loss_weight : float, default=0.1
        ``lambda``, the weight of the center loss (``0`` trains with the
        cross-entropy only). The paper tries 0, 0.001, 0.01, 0.1 and 1.
    center_lr : float, default=0.5
        ``alpha`` of Wen et al.'s center update, in ``[0, 1]``: after each
        batch, ``c_j <- c_j - alpha * sum_{y_i=j} (c_j - f_i) / (1 + n_j)``.
        The centers are not optimised by gradient descent (see
        :class:`~sklearn_ood.nn.CenterLoss`).
    center_loss_reduction : {"mean", "sum"}, default="mean"
        ``"sum"`` is the formula of the papers, ``1/2 sum_i ||f_i - c_{y_i}||^2``
        over the mini-batch; ``"mean"`` divides it by the batch size, as the
        cross-entropy is, so that ``lambda`` does not depend on ``batch_size``
        (a paper ``lambda`` with ``"sum"`` is ``batch_size`` times it with
        ``"mean"``). See Notes for the choice of the default.
    epochs : int, default=None
        Training epochs of the network; None is 20 (the paper does not state
        its schedule).
    batch_size : int, default=128
        Mini-batch size for training (network and head) and scoring.
    lr : float, default=1e-3
        Learning rate of the network.
    optimizer : {"adam", "adamw", "sgd"} or torch.optim.Optimizer subclass, \
default="adam"
        Optimiser of the network and of the head.
    weight_decay : float, default=0.0
        Weight decay of the network's optimiser.
    lr_schedule : (milestones, gamma) or None, default=None
        Multiply the network's learning rate by ``gamma`` after each epoch in
        ``milestones``.
    quantile : float, default=0.975
        Quantile of the training distances ``D_c`` that sets ``theta_c``.
    covariance : {"empirical", "ledoit_wolf", "oas"} or float, \
default="empirical"
        Per-class covariance estimate, passed to :class:`MahalanobisDetector`.
        ``"empirical"`` (maximum likelihood) is the paper's; the shrinkage
        estimators help when classes have few samples for the feature
        dimension.
    head : {"mahalanobis", "mlp"}, default="mahalanobis"
        Which detector ``score_samples`` uses (see above). ``"mlp"`` needs
        samples labelled ``-1`` in ``y``.
    head_epochs : int, default=20
        Training epochs of the MLP head (``head="mlp"`` only).
    head_lr : float, default=1e-3
        Learning rate of the MLP head (``head="mlp"`` only).
    decision : {"contamination", "paper"}, default="contamination"
        How :meth:`predict` decides. ``"contamination"``: as every detector,
        ``offset_`` is set from the calibration scores so that ``predict``
        flags the ``contamination`` share of new normal images. ``"paper"``:
        the paper's fixed rules, ``offset_ = 0``: with ``head="mahalanobis"``
        the OR rule on the per-class thresholds ``theta_c``, with
        ``head="mlp"`` the cut at probability 0.5 (see Notes).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where training and scoring run: ``"auto"`` is the first GPU when CUDA
        is available and the CPU otherwise; a CUDA device asked for on a
        machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`.
    random_state : int, RandomState instance or None, default=None
        Seeds the calibration split (or folds), the network and head
        initialisation and the shuffling. With an int, CPU results are
        deterministic.
    verbose : int, default=0
        Progress output of the training loops.
    validation_fraction : float in [0, 1), default=0.1
        Share of the in-distribution images (stratified by class) held out
        for the calibration scores. 0 trains on every image and cross-fits
        ``cv`` networks for the calibration scores.
    cv : int, default=5
        Number of cross-fitting folds when ``validation_fraction=0`` (``cv``
        more trainings); unused otherwise.
    contamination : "auto" or float, default="auto"
        Share of new normal images that :meth:`predict` flags with
        ``decision="contamination"``; ``"auto"`` is 0.025 (see
        :mod:`sklearn_ood.base`). Unused with ``decision="paper"``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (labels ``-1`` excluded).
    module_ : torch.nn.Module
        The trained network, on the CPU, in eval mode.
    centers_ : ndarray of shape (n_classes, n_features)
        Center-loss class centers at the end of training.
    mahalanobis_ : MahalanobisDetector
        Per-class Gaussian model of the training deep features (float64).
    thresholds_ : ndarray of shape (n_classes,)
        ``theta_c ** 2``: the squared per-class thresholds, in the unit of
        :meth:`class_distances`. ``theta_c`` is the ``quantile`` percentile
        of ``D_c`` over the training samples of class ``c`` (linear
        interpolation, NumPy's default).
    head_ : torch.nn.Module or None
        The trained :class:`~sklearn_ood.nn.MLPHead` (CPU, eval mode) with
        ``head="mlp"``, else None.
    epochs_ : int
        Number of epochs the network trained.
    history_ : TrainingHistory
        Mean training loss of each epoch (a list): the network's epochs,
        followed by the head's with ``head="mlp"``; ``history_.stages`` labels
        them ``"network"`` / ``"head"`` (see
        :class:`~sklearn_ood.nn.TrainingHistory`).
    calibration_scores_ : ndarray
        Scores of the held-out images (or the cross-fitted scores of every
        in-distribution image with ``validation_fraction=0``).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.

    See Also
    --------
    MahalanobisDetector : Mahalanobis detectors on fixed feature vectors.

    Notes
    -----
    **Input.** Images of shape ``(N, H, W)``, ``(N, H, W, C)`` or
    ``(N, C, H, W)``. uint8 images are divided by 255; float images are used
    as given (score with the same pixel scale as in ``fit``). The default
    LeNet needs images of at least 12x12 pixels.

    **Labels.** ``y`` is required, with at least two classes of at least two
    samples: the network is a classifier and the per-class covariances need
    samples. With ``y=None`` (or a single class) the cross-entropy is
    identically zero and the center loss alone is minimised by collapsing all
    features onto one point, so ``fit`` raises a ``ValueError`` instead of
    training a degenerate network. Samples labelled ``-1`` train the MLP head
    (``head="mlp"``) and are otherwise left out.

    **Score.** With ``head="mahalanobis"``,
    ``score_samples(x) = max_c (1 - D_c(x) / theta_c) = 1 - min_c D_c(x) / theta_c``:
    each class's distance in units of its own threshold. It is ``>= 0``
    exactly when ``D_c(x) <= theta_c`` for some ``c``, so with
    ``decision="paper"`` (``offset_ = 0``) :meth:`predict` is exactly the
    paper's OR rule. (The paper's ROC curves instead move one common threshold
    on ``min_c D_c``; :meth:`class_distances` gives the squared ``D_c`` for
    that.) With ``head="mlp"`` the score is the head's logit, the log-odds of
    being in-distribution, and ``offset_ = 0`` is the paper's 0.5 probability
    cut.

    **Decision and calibration.** With ``decision="contamination"`` (default)
    ``contamination`` means what it means for every detector: the share of new
    normal images flagged, from calibration scores of images the network did
    not train on (``validation_fraction`` held out, or cross-fitting with
    ``validation_fraction=0``). The paper's OR rule (``decision="paper"``)
    takes its thresholds from the training images themselves, which the
    network has memorised, so it flags more new in-distribution images than
    ``1 - quantile`` (8-15% instead of 2.5% on the 5,000-image MNIST subset);
    with it :meth:`fit_predict` is :meth:`predict` on the training images.
    :meth:`p_values` use the calibration scores in both cases.

    **Center-loss scale.** The papers write ``L_C`` as a sum over the batch;
    ``center_loss_reduction="mean"`` divides it by the batch size, so a
    ``lambda`` with ``"sum"`` is ``batch_size`` times the same ``lambda`` with
    ``"mean"``. The default ``"mean"`` is the reduction whose ``lambda`` sweep
    reproduced the paper's trend on the 5,000-image MNIST subset vs
    Fashion-MNIST (``benchmarks/bench_center_loss.py``, batch 128, one seed):
    with ``"mean"`` the center loss raises the Mahalanobis AUROC from 0.968
    (``lambda = 0``) to 0.982 (``lambda = 0.001``; paper 0.965 to 0.990) and
    the classifier keeps its F1 (0.954-0.971 for every ``lambda``; the paper
    reports a cost of at most 0.005); with ``"sum"`` the AUROC falls as
    ``lambda`` grows (0.964, 0.942, 0.949) and ``lambda = 1`` collapses the
    classifier (F1 0.02, AUROC 0.887), where the paper has its best result.

    **Numerics.** Covariances are inverted through
    :class:`MahalanobisDetector`'s eigenvalue floor (1e-6 of the largest
    eigenvalue) where the paper writes ``S_c^-1``: dead ReLU features make
    ``S_c`` singular, and a deviation along such a direction then counts as very
    unusual. A threshold ``theta_c`` of zero (collapsed features) is raised to
    the machine epsilon with a warning.

    References
    ----------
    .. [1] G. Varedzhan, A. Yurkov, K. Ushenin. "Anomaly Detection in Image
       Datasets Using Convolutional Neural Networks, Center Loss, and
       Mahalanobis Distance". USBEREIT 2021.
    .. [2] Y. Wen, K. Zhang, Z. Li, Y. Qiao. "A Discriminative Feature Learning
       Approach for Deep Face Recognition". ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import CenterLossDetector
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(60, 12, 12).astype(np.float32)
    >>> y = np.repeat([0, 1], 30)
    >>> X[y == 1, :6] += 1.0
    >>> det = CenterLossDetector(epochs=2, device="cpu", random_state=0).fit(X, y)
    >>> det.thresholds_.shape, det.predict(X[:3]).shape
    ((2,), (3,))
    """

    _parameter_constraints: dict = {
        **BaseNetworkDetector._parameter_constraints,
        "center_loss_weight": [Interval(Real, 0.0, None, closed="left")],
        "center_lr": [Interval(Real, 0.0, 1.0, closed="both")],
        "center_loss_reduction": [StrOptions({"mean", "sum"})],
        "quantile": [Interval(Real, 0.0, 1.0, closed="right")],
        "covariance": [
            StrOptions({"empirical", "ledoit_wolf", "oas"}),
            Interval(Real, 0.0, 1.0, closed="both"),
        ],
        "head": [StrOptions({"mahalanobis", "mlp"})],
        "head_epochs": [Interval(Integral, 1, None, closed="left")],
        "head_lr": [Interval(Real, 0.0, None, closed="neither")],
        "decision": [StrOptions({"contamination", "paper"})],
    }

    def __init__(
        self,
        *,
        network: type[nn.Module] | nn.Module | None = None,
        network_kwargs: dict[str, Any] | None = None,
        center_loss_weight: float = 0.1,
        center_lr: float = 0.5,
        center_loss_reduction: str = "mean",
        epochs: int | None = None,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: str | type[torch.optim.Optimizer] = "adam",
        weight_decay: float = 0.0,
        lr_schedule: tuple | None = None,
        quantile: float = 0.975,
        covariance: str | float = "empirical",
        head: str = "mahalanobis",
        head_epochs: int = 20,
        head_lr: float = 1e-3,
        decision: str = "contamination",
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        validation_fraction: float = 0.1,
        cv: int = 5,
        contamination: str | float = "auto",
    ) -> None:
        self.network = network
        self.network_kwargs = network_kwargs
        self.center_loss_weight = center_loss_weight
        self.center_lr = center_lr
        self.center_loss_reduction = center_loss_reduction
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.quantile = quantile
        self.covariance = covariance
        self.head = head
        self.head_epochs = head_epochs
        self.head_lr = head_lr
        self.decision = decision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.contamination = contamination

    # ------------------------------------------------------------------ helpers
    def _network_outputs(self, x: torch.Tensor):
        """Features and logits of images ``x`` (validated, unscaled), on the CPU."""
        return self._forward(lambda m: lambda xb: _split_output(m(xb)), x)

    def _features(self, x: torch.Tensor) -> np.ndarray:
        return self._network_outputs(x)[0].numpy()

    def _squared_distances(self, features: np.ndarray) -> np.ndarray:
        """Squared ``D_c`` of deep features, shape (n_samples, n_classes)."""
        return self.mahalanobis_.class_distances(features.astype(np.float64))

    def _score_features(self, features: np.ndarray) -> np.ndarray:
        if self.head_ is not None:
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
            logits = self._forward(lambda m: m, x, attr="head_", preprocess=_same)
            return logits.numpy().astype(np.float64)
        ratio = self._squared_distances(features) / self.thresholds_
        return 1.0 - np.sqrt(ratio.min(axis=1))

    def _default_epochs(self) -> int:
        return 20

    def _prepare(self, X, y, X_outliers):
        name = type(self).__name__
        if y is None:
            raise ValueError(
                f"{name} needs class labels y with at least 2 classes: it trains "
                "a classifier (with y=None the cross-entropy is zero and the "
                "center loss alone collapses the features). Got y=None."
            )
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{name} needs at least 2 classes in y (besides -1 for known "
                f"outliers); got {len(classes)} class: {classes.tolist()}."
            )
        counts = np.bincount(y_idx)
        if counts.min() < 2:
            raise ValueError(
                f"{name} needs at least 2 samples per class to estimate the "
                f"per-class covariance; class {classes[counts.argmin()]!r} has "
                f"{counts.min()}."
            )
        if self.head == "mlp" and X_outliers is None:
            raise ValueError(
                f"{name}(head='mlp') trains its head on known anomalies: label "
                "some training samples -1 in y, or use head='mahalanobis'."
            )
        self.classes_ = classes
        return y_idx

    # ---------------------------------------------------------------------- fit
    def _fit_network(self, X, codes, X_outliers, rng):
        classes, n_classes = self.classes_, len(self.classes_)
        counts = np.bincount(codes, minlength=n_classes)
        if counts.min() < 2:
            raise ValueError(
                f"Class {classes[counts.argmin()]!r} has {counts.min()} image(s) "
                "among those that train the network (validation_fraction="
                f"{self.validation_fraction} holds images out, or cv={self.cv} "
                "folds with validation_fraction=0); at least 2 are needed. Lower "
                "validation_fraction or add samples."
            )
        derived = {
            "in_channels": self.image_shape_[0],
            "num_classes": n_classes,
            "input_size": tuple(self.image_shape_[1:]),
        }
        network, out = self._build({LeNet: derived}, LeNet, rng, X)
        features, logits = _split_output(out)
        if logits.shape[1] != n_classes:
            raise ValueError(
                f"The 'network' returns logits for {logits.shape[1]} classes but y "
                f"has {n_classes} classes."
            )
        center_loss = CenterLoss(
            n_classes,
            int(features.shape[1]),
            alpha=float(self.center_lr),
            reduction=self.center_loss_reduction,
        )
        both = nn.ModuleDict({"network": network, "center_loss": center_loss})
        lam = float(self.center_loss_weight)

        def loss_fn(module, batch):
            xb, yb = batch
            f, z = _split_output(module["network"](self._pixels(xb)))
            loss = F.cross_entropy(z, yb)
            if lam > 0:
                loss = loss + lam * module["center_loss"](f, yb)
            # Wen et al.: centers move after the loss of the batch is computed.
            module["center_loss"].update_centers(f, yb)
            return loss

        history = self._train(
            both,
            loss_fn,
            (X, torch.as_tensor(codes, dtype=torch.int64)),
            rng,
            X=X,
            params=[p for p in network.parameters() if p.requires_grad],
        )
        self.centers_ = center_loss.centers.detach().cpu().numpy().copy()
        self.module_ = self._finish_module(network)

        features_fit = self._features(X)
        self.mahalanobis_ = MahalanobisDetector(
            mode="per_class", covariance=self.covariance
        ).fit(features_fit.astype(np.float64), codes)
        D = np.sqrt(self._squared_distances(features_fit))
        theta = np.array(
            [
                np.percentile(D[codes == k, k], 100.0 * self.quantile)
                for k in range(n_classes)
            ]
        )
        eps = np.finfo(np.float64).eps
        if np.any(theta <= eps):
            warnings.warn(
                "The deep features of class(es) "
                f"{classes[theta <= eps].tolist()} collapsed onto their "
                "mean (threshold 0); their thresholds are raised to the machine "
                "epsilon. Lower center_loss_weight or check the training.",
                UserWarning,
                stacklevel=4,
            )
            theta = np.maximum(theta, eps)
        self.thresholds_ = theta**2

        self.head_ = None
        if self.head == "mlp":
            history = TrainingHistory.chain(
                [history, self._fit_head(features_fit, X_outliers, rng)]
            )
        self.history_ = history

    def _fit_head(self, features_in, X_outliers, rng):
        features_out = self._features(X_outliers)
        inputs = torch.from_numpy(
            np.concatenate([features_in, features_out]).astype(np.float32)
        )
        targets = torch.cat(
            [torch.ones(len(features_in)), torch.zeros(len(features_out))]
        )
        head = build_module(
            None,
            None,
            default=MLPHead,
            default_kwargs={"in_features": int(inputs.shape[1])},
            random_state=rng,
            name="head",
        )

        def bce(module, batch):
            fb, tb = batch
            return F.binary_cross_entropy_with_logits(module(fb), tb)

        history = self._train(
            head,
            bce,
            (inputs, targets),
            rng,
            X=X_outliers,
            stage="head",
            epochs=self.head_epochs,
            lr=self.head_lr,
            weight_decay=0.0,
            lr_schedule=None,
        )
        self.head_ = self._finish_module(head)
        return history

    # -------------------------------------------------------------- decisions
    def _set_calibration(self, scores, rows=None) -> None:
        if self.decision != "paper":
            super()._set_calibration(scores, rows)
            return
        # The paper's rule: D_c <= theta_c for some c (or sigmoid >= 0.5 for
        # the MLP head), i.e. score >= 0; contamination is unused, so the
        # calibration scores are only validated and stored (for p_values).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            super()._set_calibration(scores, rows)
        self.offset_ = 0.0

    def _fit_predict_labels(self, X, y):
        if self.decision == "paper":
            return self.predict(X)
        return super()._fit_predict_labels(X, y)

    # ------------------------------------------------------------------ scoring
    def _score(self, X):
        return self._score_features(self._features(X))

    def _validated(self, X):
        check_is_fitted(self)
        return self._validate_score_input(X)

    def transform(self, X) -> np.ndarray:
        """Compute the deep features of the trained network.

        Parameters
        ----------
        X : array-like of images
            Images in the layout and pixel scale used in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), dtype float32
            The network's deep features (its last hidden layer for LeNet).
        """
        return self._features(self._validated(X)).astype(np.float32, copy=False)

    def class_distances(self, X) -> np.ndarray:
        """Compute the squared Mahalanobis distance ``D_c**2`` to each class.

        Parameters
        ----------
        X : array-like of images
            Images in the layout and pixel scale used in ``fit``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes)
            Column ``k`` is the squared distance of the deep features to class
            ``classes_[k]`` (:meth:`MahalanobisDetector.class_distances`), in
            the unit of ``thresholds_``: ``class_distances(X) <= thresholds_``
            is the paper's per-class test.
        """
        return self._squared_distances(self.transform(X))

    def predict_class_proba(self, X) -> np.ndarray:
        """Compute the class probabilities of the classifier (softmax of its logits).

        Parameters
        ----------
        X : array-like of images
            Images in the layout and pixel scale used in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float64
            Column ``k`` is the probability of class ``classes_[k]``.
        """
        logits = self._network_outputs(self._validated(X))[1]
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict_class(self, X) -> np.ndarray:
        """Predict the class with the classifier (argmax of its logits).

        Parameters
        ----------
        X : array-like of images
            Images in the layout and pixel scale used in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._network_outputs(self._validated(X))[1]
        return self.classes_[logits.argmax(dim=1).numpy()]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


def _same(x):
    return x
