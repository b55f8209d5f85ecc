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
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._image_base import BaseImageDetector
from ._mahalanobis import MahalanobisDetector
from .nn._architectures import LeNet, MLPHead
from .nn._device import resolve_device
from .nn._losses import CenterLoss
from .nn._training import build_module, predict_batches, train_module

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


class CenterLossDetector(BaseImageDetector):
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
      training samples of class ``c``. ``x`` is normal iff ``D_c(x) <= theta_c``
      for at least one class ``c``.
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
        :class:`~sklearn_ood.nn.LeNet` (max-pooling, ReLU, 84-d ReLU features)
        with ``in_channels``, ``num_classes`` and ``input_size`` taken from the
        data. A class is called with ``network_kwargs`` only (no argument is
        derived from the data, so give it the number of classes); an instance
        is deep-copied and never modified.
    network_kwargs : dict, default=None
        Keyword arguments of the network class; with ``network=None`` they
        override the LeNet defaults (e.g. ``{"feature_dim": 32}``).
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
        (what Wen et al.'s released code does).
    epochs : int, default=20
        Training epochs of the network.
    batch_size : int, default=128
        Mini-batch size for training (network and head) and scoring.
    lr : float, default=1e-3
        Learning rate of the network.
    optimizer : {"adam", "adamw", "sgd"} or torch.optim.Optimizer subclass, \
default="adam"
        Optimiser of the network and of the head.
    weight_decay : float, default=0.0
        Weight decay of the network's optimiser.
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
    device : {"auto", "cpu", "cuda"}, str or torch.device, default="auto"
        Where training and scoring run; ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the network and head initialisation, the shuffling and the
        holdout split. With an int, CPU results are deterministic.
    verbose : int or bool, default=False
        Progress output of the training loops.
    validation_fraction : float, default=0.1
        Share of the in-distribution samples held out to set ``offset_`` when
        ``contamination`` is a float; unused with ``contamination="auto"``.
    contamination : "auto" or float, default="auto"
        ``"auto"``: the paper's decision rule, ``offset_ = 0`` (see Notes).
        A float in ``(0, 0.5]``: ``offset_`` is that percentile of the scores
        of held-out samples.

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
        ``theta_c``, the ``quantile`` percentile of ``D_c`` over the training
        samples of class ``c`` (linear interpolation, NumPy's default).
    head_ : torch.nn.Module or None
        The trained :class:`~sklearn_ood.nn.MLPHead` (CPU, eval mode) with
        ``head="mlp"``, else None.
    history_ : list of float
        Mean training loss of the network per epoch.
    head_history_ : list of float or None
        Mean training loss of the head per epoch (``head="mlp"``).
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
    as given (score with the same pixel scale as in ``fit``).

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
    ``contamination="auto"`` (``offset_ = 0``) :meth:`predict` is exactly the
    paper's OR rule. (The paper's ROC curves instead move one common threshold
    on ``min_c D_c``; :meth:`class_distances` gives the ``D_c`` for that.)
    With ``head="mlp"`` the score is the head's logit, the log-odds of being
    in-distribution, and ``offset_ = 0`` is the paper's 0.5 probability cut.

    **Offset.** With ``contamination="auto"`` the network and the statistics
    are fitted on all in-distribution samples and ``offset_ = 0``: the paper's
    rule, whose thresholds come from the training samples themselves. The
    network has memorised those, so new in-distribution samples exceed
    ``theta_c`` more often than ``1 - quantile``. This overrides the package's
    usual ``"auto"`` rule (a percentile of held-out scores) to stay faithful to
    the paper. With a float ``contamination``, ``validation_fraction`` of the
    in-distribution samples (stratified by class) is held out, the network,
    statistics, thresholds and head are fitted on the rest, and ``offset_`` is
    the ``100 * contamination`` percentile of the held-out scores; ``predict``
    then no longer uses the fixed 97.5% thresholds.

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
    >>> X = rng.rand(40, 12, 12).astype(np.float32)
    >>> y = np.repeat([0, 1], 20)
    >>> X[y == 1, :6] += 1.0
    >>> det = CenterLossDetector(epochs=2, device="cpu", random_state=0).fit(X, y)
    >>> det.thresholds_.shape, det.predict(X[:3]).shape
    ((2,), (3,))
    """

    _parameter_constraints: dict = {
        **BaseImageDetector._parameter_constraints,
        "network": [None, callable, nn.Module],
        "network_kwargs": [dict, None],
        "center_loss_weight": [Interval(Real, 0.0, None, closed="left")],
        "center_lr": [Interval(Real, 0.0, 1.0, closed="both")],
        "center_loss_reduction": [StrOptions({"mean", "sum"})],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0.0, None, closed="neither")],
        "optimizer": [StrOptions({"adam", "adamw", "sgd"}), type],
        "weight_decay": [Interval(Real, 0.0, None, closed="left")],
        "quantile": [Interval(Real, 0.0, 1.0, closed="right")],
        "covariance": [
            StrOptions({"empirical", "ledoit_wolf", "oas"}),
            Interval(Real, 0.0, 1.0, closed="both"),
        ],
        "head": [StrOptions({"mahalanobis", "mlp"})],
        "head_epochs": [Interval(Integral, 1, None, closed="left")],
        "head_lr": [Interval(Real, 0.0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        network: type[nn.Module] | nn.Module | None = None,
        network_kwargs: dict[str, Any] | None = None,
        center_loss_weight: float = 0.1,
        center_lr: float = 0.5,
        center_loss_reduction: str = "mean",
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: str | type[torch.optim.Optimizer] = "adam",
        weight_decay: float = 0.0,
        quantile: float = 0.975,
        covariance: str | float = "empirical",
        head: str = "mahalanobis",
        head_epochs: int = 20,
        head_lr: float = 1e-3,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int | bool = False,
        validation_fraction: float = 0.1,
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
        self.quantile = quantile
        self.covariance = covariance
        self.head = head
        self.head_epochs = head_epochs
        self.head_lr = head_lr
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.contamination = contamination

    # ------------------------------------------------------------------ helpers
    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 input (0..255) to [0, 1]; float input unchanged."""
        return x / 255.0 if self._input_info.was_uint8 else x

    def _network_outputs(self, x: torch.Tensor, device=None):
        """Features and logits of images ``x`` (validated, unscaled), on the CPU."""
        device = resolve_device(self.device) if device is None else device
        module = self._module_on_device("module_", device)
        return predict_batches(
            lambda xb: _split_output(module(xb)),
            x,
            batch_size=self.batch_size,
            device=device,
            preprocess=self._scale,
            module=module,
        )

    def _distances_from_features(self, features: np.ndarray) -> np.ndarray:
        """``D_c`` (not squared) of deep features, shape (n_samples, n_classes)."""
        sq = self.mahalanobis_.class_distances(features.astype(np.float64))
        return np.sqrt(sq)

    def _score_features(self, features: np.ndarray, device=None) -> np.ndarray:
        if self.head_ is not None:
            device = resolve_device(self.device) if device is None else device
            head = self._module_on_device("head_", device)
            logits = predict_batches(
                head,
                torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)),
                batch_size=self.batch_size,
                device=device,
            )
            return logits.numpy().astype(np.float64)
        D = self._distances_from_features(features)
        return 1.0 - (D / self.thresholds_).min(axis=1)

    def _check_labels(self, y, X_outliers):
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
        return classes, y_idx

    def _build_network(self, x_probe, n_classes, rng, device):
        if self.network is None:
            default_kwargs = {
                "in_channels": int(x_probe.shape[1]),
                "num_classes": n_classes,
                "input_size": (int(x_probe.shape[2]), int(x_probe.shape[3])),
            }
        else:
            default_kwargs = None
        module = build_module(
            self.network,
            self.network_kwargs,
            default=LeNet,
            default_kwargs=default_kwargs,
            random_state=rng,
        )
        module.to(device).eval()
        with torch.inference_mode():
            features, logits = _split_output(module(x_probe.to(device)))
        if logits.shape[1] != n_classes:
            raise ValueError(
                f"The 'network' returns logits for {logits.shape[1]} classes but y "
                f"has {n_classes} classes."
            )
        return module, int(features.shape[1])

    # ---------------------------------------------------------------------- fit
    def _fit(self, X, y, X_outliers):
        classes, y_idx = self._check_labels(y, X_outliers)
        n_classes = len(classes)
        rng = check_random_state(self.random_state)
        device = resolve_device(self.device)
        self._clear_torch_cache()

        if self.contamination == "auto":
            fit_idx, hold_idx = np.arange(X.shape[0]), None
        else:
            fit_idx, hold_idx = self._holdout_split(X.shape[0], y_idx, rng)
            fit_counts = np.bincount(y_idx[fit_idx], minlength=n_classes)
            if fit_counts.min() < 2:
                raise ValueError(
                    f"After holding out validation_fraction={self.validation_fraction}"
                    f" of the samples, class {classes[fit_counts.argmin()]!r} has "
                    f"{fit_counts.min()} training sample(s); at least 2 are needed. "
                    "Lower validation_fraction or add samples."
                )
        x_fit = self._scale(X[fit_idx])
        y_fit = torch.as_tensor(y_idx[fit_idx], dtype=torch.int64)

        network, feature_dim = self._build_network(x_fit[:2], n_classes, rng, device)
        center_loss = CenterLoss(
            n_classes,
            feature_dim,
            alpha=float(self.center_lr),
            reduction=self.center_loss_reduction,
        )
        both = nn.ModuleDict({"network": network, "center_loss": center_loss})
        lam = float(self.center_loss_weight)

        def loss_fn(module, batch):
            xb, yb = batch
            features, logits = _split_output(module["network"](xb))
            loss = F.cross_entropy(logits, yb)
            if lam > 0:
                loss = loss + lam * module["center_loss"](features, yb)
            # Wen et al.: centers move after the loss of the batch is computed.
            module["center_loss"].update_centers(features, yb)
            return loss

        history = train_module(
            both,
            loss_fn,
            (x_fit, y_fit),
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.lr,
            weight_decay=self.weight_decay,
            params=[p for p in network.parameters() if p.requires_grad],
            device=device,
            random_state=rng,
            verbose=int(self.verbose),
            desc="CenterLossDetector network",
        )
        self.history_ = list(history)
        self.classes_ = classes
        self.centers_ = center_loss.centers.detach().cpu().numpy().copy()
        self.module_ = network.to("cpu").eval()

        features_fit = self._network_outputs(X[fit_idx], device)[0].numpy()
        self.mahalanobis_ = MahalanobisDetector(
            mode="per_class", covariance=self.covariance
        ).fit(features_fit.astype(np.float64), y_idx[fit_idx])
        D = self._distances_from_features(features_fit)
        y_fit_np = y_idx[fit_idx]
        thresholds = np.array(
            [
                np.percentile(D[y_fit_np == k, k], 100.0 * self.quantile)
                for k in range(n_classes)
            ]
        )
        eps = np.finfo(np.float64).eps
        if np.any(thresholds <= eps):
            warnings.warn(
                "The deep features of class(es) "
                f"{classes[thresholds <= eps].tolist()} collapsed onto their "
                "mean (threshold 0); their thresholds are raised to the machine "
                "epsilon. Lower center_loss_weight or check the training.",
                UserWarning,
                stacklevel=3,
            )
            thresholds = np.maximum(thresholds, eps)
        self.thresholds_ = thresholds

        self.head_, self.head_history_ = None, None
        if self.head == "mlp":
            self._fit_head(features_fit, X_outliers, rng, device)

        if hold_idx is None:
            return np.empty(0)
        features_hold = self._network_outputs(X[hold_idx], device)[0].numpy()
        return self._score_features(features_hold, device)

    def _fit_head(self, features_in, X_outliers, rng, device):
        features_out = self._network_outputs(X_outliers, device)[0].numpy()
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

        history = train_module(
            head,
            bce,
            (inputs, targets),
            epochs=self.head_epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.head_lr,
            device=device,
            random_state=rng,
            verbose=int(self.verbose),
            desc="CenterLossDetector MLP head",
        )
        self.head_history_ = list(history)
        self.head_ = head.to("cpu").eval()

    def _set_calibration(self, scores, rows=None) -> None:
        # "auto" is the paper's rule: D_c <= theta_c for some c, i.e. score >= 0
        # (or sigmoid >= 0.5 for the MLP head), so the offset is 0.
        if self.contamination == "auto":
            self.calibration_scores_ = np.asarray(scores, dtype=np.float64)
            self._calibration_rows = rows
            self.offset_ = 0.0
            return
        super()._set_calibration(scores, rows)

    # ------------------------------------------------------------------ scoring
    def _score(self, X):
        device = resolve_device(self.device)
        features = self._network_outputs(X, device)[0].numpy()
        return self._score_features(features, device)

    def _validated(self, X):
        check_is_fitted(self)
        return self._validate_score_input(X)

    def transform(self, X) -> np.ndarray:
        """Deep features of the trained network.

        Parameters
        ----------
        X : array-like of images
            Images in the layout and pixel scale used in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), dtype float32
            The network's deep features (its last hidden layer for LeNet).
        """
        return self._network_outputs(self._validated(X))[0].numpy()

    def class_distances(self, X) -> np.ndarray:
        """Compute the Mahalanobis distance ``D_c`` of each sample to each class.

        Parameters
        ----------
        X : array-like of images
            Images in the layout and pixel scale used in ``fit``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes)
            Column ``k`` is ``D_c`` (the square root of the squared distance of
            :meth:`MahalanobisDetector.class_distances`) for class
            ``classes_[k]``.
        """
        return self._distances_from_features(self.transform(X))

    def predict_class_proba(self, X) -> np.ndarray:
        """Class probabilities of the classifier (softmax of its logits).

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
        """Class predicted by the classifier (argmax of its logits).

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
