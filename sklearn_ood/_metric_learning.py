"""Metric learning with out-of-distribution mining (Masana et al., BMVC 2018).

A network is trained with a contrastive loss so that images of the same class
are embedded close together and images of different classes (and known
out-of-distribution images, "ODM") at least a margin apart. A new image is
scored by its squared Euclidean distance to the nearest class centre of the
training embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._network_base import BaseNetworkDetector
from .nn._architectures import LeNet, VGGEmbedding
from .nn._losses import ContrastiveLoss
from .nn._pairs import PairSampler

__all__ = ["MetricLearningDetector"]

# Default embedding sizes of the paper: 5-d for LeNet on MNIST (supplement,
# Table 3), 10-d (``num_feats``) for the VGG network on CIFAR-10 / SVHN.
_DEFAULT_DIM = {LeNet: 5, VGGEmbedding: 10}
# Rows x classes x dims of float64 working memory per chunk of distances.
_CHUNK_ELEMENTS = 2**22


def _embed(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Embedding: ``module.forward_features(x)`` if defined, else ``module(x)``."""
    forward = getattr(module, "forward_features", None)
    out = forward(x) if callable(forward) else module(x)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out)
        raise ValueError(
            "The 'network' of MetricLearningDetector must map a batch of images "
            "to a 2-D embedding tensor (n_samples, embedding_dim) through its "
            f"forward_features method or, without one, its forward; got {shape}."
        )
    return out


def _squared_distances(E: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(n, k)``, summed from explicit differences."""
    n, k = E.shape[0], centers.shape[0]
    step = max(1, _CHUNK_ELEMENTS // max(1, k * centers.shape[1]))
    out = np.empty((n, k), dtype=np.float64)
    for start in range(0, n, step):
        diff = E[start : start + step, None, :] - centers[None, :, :]
        out[start : start + step] = np.einsum("ijk,ijk->ij", diff, diff)
    return out


class MetricLearningDetector(TransformerMixin, BaseNetworkDetector):
    """Metric learning with out-of-distribution mining (ML / ODM) on images.

    The network is trained with a contrastive loss on pairs of embeddings:
    pairs of the same class are pulled together, pairs of different classes
    pushed at least ``margin`` apart (Masana et al., 2018). Samples labelled
    ``-1`` in ``y`` are known out-of-distribution images: with them the method
    is *ODM* (out-of-distribution mining), without them plain *ML*. The score
    of an image is minus its squared Euclidean distance to the nearest class
    centre, the mean training embedding of each class; higher means more
    normal.

    Parameters
    ----------
    network : torch.nn.Module subclass, torch.nn.Module instance or None, \
default=None
        The embedding network. Its embedding is ``forward_features(x)`` when
        the module has that method (as :class:`~sklearn_ood.nn.LeNet`), its
        ``forward(x)`` otherwise; it must be a 2-D tensor. A class is built
        with ``network_kwargs``; an instance is deep-copied (never modified).
        ``None`` picks the paper's network from the training images: the
        VGG network of the CIFAR-10 / SVHN experiments
        (:class:`~sklearn_ood.nn.VGGEmbedding`) for RGB images of at least
        32x32 pixels, LeNet (:class:`~sklearn_ood.nn.LeNet` with a linear
        ``feature_dim``-d embedding, the MNIST experiment) for anything else;
        LeNet needs images of at least 12x12 pixels.
    network_kwargs : dict, default=None
        Keyword arguments of the network class. For ``LeNet`` and
        ``VGGEmbedding`` (and their subclasses) the detector supplies
        ``in_channels``, ``input_size`` and the embedding size (plus
        ``feature_activation=False`` and ``num_classes`` for LeNet);
        ``network_kwargs`` overrides them.
    embedding_dim : int, default=None
        Size of the embedding of ``LeNet`` (``feature_dim``) or
        ``VGGEmbedding``. ``None`` uses the paper's sizes: 5 for LeNet, 10
        for VGG. Must be ``None`` for other networks (set their size through
        ``network_kwargs``).
    margin : float, default=10.0
        Contrastive margin ``m`` (``siam_margin`` of the released code).
    squared : bool, default=False
        ``False``: the linear contrastive loss of the released code,
        ``0.5 * mean(s d + (1 - s) max(0, m - d))``; ``True``: the squared
        form of the paper's Eq. 1. See :class:`~sklearn_ood.nn.ContrastiveLoss`.
    similar_ratio : float, default=0.25
        Share of the pairs of a batch that are same-class pairs.
    ood_ratio : float, default=0.25
        Share of the images of a mining batch that are known OOD images, each
        the partner of an in-distribution image in a different-class pair
        (25% as in the paper). ``similar_ratio + 2 * ood_ratio`` must not
        exceed 1. Unused without samples labelled ``-1``.
    ood_every : int, default=2
        Every ``ood_every``-th batch is a mining batch (batches 1, 3, 5, ...,
        counted from 0 across epochs).
    epochs : int, default=None
        Passes over the in-distribution training images; None is 30 (the
        paper trains 3,000 epochs with ``lr=1e-4``).
    batch_size : int, default=256
        Images per training batch (half "left" images, half their pair
        partners, at least one pair; 1024 in the paper) and per scoring batch.
    lr : float, default=1e-3
        Learning rate. The paper's ``1e-4`` needs its thousands of epochs;
        ``1e-3`` trains LeNet in tens of epochs on a CPU.
    optimizer : {"adam", "adamw", "sgd"} or torch.optim.Optimizer subclass, \
default="adam"
        Optimiser (Adam in the paper).
    weight_decay : float, default=1e-4
        Weight decay of the optimiser (with Adam the coupled L2 penalty);
        ``1e-4`` equals the released code's ``1e-4 * sum(||w||^2) / 2`` on all
        weights and biases.
    lr_schedule : (milestones, gamma) or None, default=None
        Multiply the learning rate by ``gamma`` after each epoch in
        ``milestones``; the paper uses ``((150, 2250), 0.1)``.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where training and scoring run: ``"auto"`` is the first GPU when CUDA
        is available and the CPU otherwise; a CUDA device asked for on a
        machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`.
    random_state : int, RandomState instance or None, default=None
        Controls the calibration split (or folds), the initialisation, the
        pair sampling and dropout. An integer makes CPU results reproducible.
    verbose : int, default=0
        Training progress output (see :func:`~sklearn_ood.nn.train_module`).
    validation_fraction : float in [0, 1), default=0.1
        Share of the in-distribution training images (stratified by class)
        held out from training and from the class centres, for the
        calibration scores. 0 trains on every image and cross-fits ``cv``
        networks for the calibration scores.
    cv : int, default=5
        Number of cross-fitting folds when ``validation_fraction=0`` (``cv``
        more trainings); unused otherwise.
    contamination : "auto" or float, default="auto"
        Share of new normal images that :meth:`predict` flags; ``"auto"`` is
        0.025 (see :mod:`sklearn_ood.base`).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network, on the CPU, in eval mode.
    classes_ : ndarray of shape (n_classes,)
        In-distribution class labels, sorted.
    centers_ : ndarray of shape (n_classes, embedding_dim_)
        Mean embedding (float64) of the training images of each class.
    embedding_dim_ : int
        Size of the embedding.
    epochs_ : int
        Number of epochs trained.
    history_ : TrainingHistory
        Mean training loss of each epoch (a list; see
        :class:`~sklearn_ood.nn.TrainingHistory`).
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.
    calibration_scores_ : ndarray
        Scores of the held-out images (or the cross-fitted scores of every
        in-distribution image with ``validation_fraction=0``).
    offset_ : float
        ``decision_function = score_samples - offset_``.

    See Also
    --------
    MahalanobisDetector : Can be fitted on the embeddings from :meth:`transform`.

    Notes
    -----
    **Training.** Each epoch draws a random permutation of the in-distribution
    training images and cuts it into batches of ``batch_size // 2`` "left"
    images (the remainder is dropped, as in the released code; with fewer
    images than that, an epoch is one batch of all of them). Each left image
    gets a partner from ``sklearn_ood.nn._pairs.PairSampler``: the first
    ``similar_ratio`` of them one of the same class, the others one of a
    different class, and on mining batches the last ``2 * ood_ratio`` of them
    a known OOD image. OOD images are only ever partners of in-distribution
    images in different-class pairs: never paired with each other, never
    clustered. The left and right images of a batch go through the network in
    *one* forward pass (no two-branch network) and the contrastive loss is
    computed on the pairs of embeddings. Unlike the released code, mining
    batches are counted across epochs, so mining also happens when an epoch
    has a single batch (identical when the number of batches per epoch is
    even).

    **Calibration.** ``fit`` holds out ``validation_fraction`` of the
    in-distribution images (stratified by class). The network is trained on
    the rest (plus all OOD images, for mining) and the class centres are the
    mean embeddings of the rest; the scores of the held-out images, which
    neither the network nor the centres saw, are the calibration scores of
    ``offset_`` and :meth:`p_values`. With ``validation_fraction=0`` the
    network trains on every image and the calibration scores come from ``cv``
    cross-fitted networks.

    **Scoring.** Centres and scores are computed with the network in eval
    mode (dropout off), in batches whose size does not change the results.
    Images given as uint8 are divided by 255; float images are used as given
    (the paper scales them to [0, 1]). Images must have the shape and pixel
    type seen in ``fit``.

    **Deviations.** The distance in the loss is ``sqrt(||e1 - e2||^2 +
    1e-12)`` so its gradient stays finite when a pair collapses (the released
    code has no guard); the default learning rate and number of epochs are
    chosen for a CPU (see ``lr``).

    References
    ----------
    .. [1] M. Masana, I. Ruiz, J. Serrat, J. van de Weijer, A. M. Lopez,
       "Metric Learning for Novelty and Anomaly Detection", BMVC 2018.
       Code: https://github.com/mmasana/OoD_Mining

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import MetricLearningDetector
    >>> rng = np.random.RandomState(0)
    >>> y = np.repeat([0, 1, -1], 20)
    >>> X = rng.rand(60, 12, 12).astype(np.float32) + y[:, None, None]
    >>> det = MetricLearningDetector(epochs=2, batch_size=16, random_state=0)
    >>> det = det.fit(X, y)
    >>> det.transform(X).shape, det.classes_
    ((60, 5), array([0, 1]))
    >>> det.score_samples(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **BaseNetworkDetector._parameter_constraints,
        "embedding_dim": [None, Interval(Integral, 1, None, closed="left")],
        "margin": [Interval(Real, 0.0, None, closed="neither")],
        "squared": ["boolean"],
        "similar_ratio": [Interval(Real, 0.0, 1.0, closed="both")],
        "ood_ratio": [Interval(Real, 0.0, 0.5, closed="both")],
        "ood_every": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        network: type[nn.Module] | nn.Module | Callable[..., nn.Module] | None = None,
        network_kwargs: Mapping[str, Any] | None = None,
        embedding_dim: int | None = None,
        margin: float = 10.0,
        squared: bool = False,
        similar_ratio: float = 0.25,
        ood_ratio: float = 0.25,
        ood_every: int = 2,
        epochs: int | None = None,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str | type[torch.optim.Optimizer] = "adam",
        weight_decay: float = 1e-4,
        lr_schedule: tuple | None = None,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        validation_fraction: float = 0.1,
        cv: int = 5,
        contamination: str | float = "auto",
    ) -> None:
        self.network = network
        self.network_kwargs = network_kwargs
        self.embedding_dim = embedding_dim
        self.margin = margin
        self.squared = squared
        self.similar_ratio = similar_ratio
        self.ood_ratio = ood_ratio
        self.ood_every = ood_every
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.contamination = contamination

    # -- network ------------------------------------------------------------
    def _default_network(self) -> type[nn.Module]:
        c, h, w = self.image_shape_
        return VGGEmbedding if c == 3 and min(h, w) >= 32 else LeNet

    def _derived_kwargs(self, n_classes: int) -> dict:
        """Arguments derived from the data for each default architecture."""
        c, h, w = self.image_shape_
        network = self._default_network() if self.network is None else self.network
        base = None
        if isinstance(network, type):
            base = next((b for b in _DEFAULT_DIM if issubclass(network, b)), None)
        if base is None:
            if self.embedding_dim is not None:
                raise ValueError(
                    "The 'embedding_dim' parameter of MetricLearningDetector only "
                    "applies to LeNet and VGGEmbedding networks; set the embedding "
                    "size of other networks through 'network_kwargs' and leave "
                    f"embedding_dim=None. Got embedding_dim={self.embedding_dim!r} "
                    f"with network={network!r}."
                )
            return {}
        dim = _DEFAULT_DIM[base] if self.embedding_dim is None else self.embedding_dim
        dim_key = "feature_dim" if base is LeNet else "embedding_dim"
        if (
            self.embedding_dim is not None
            and isinstance(self.network_kwargs, Mapping)
            and dim_key in self.network_kwargs
        ):
            raise ValueError(
                "MetricLearningDetector got the embedding size twice: "
                f"embedding_dim={self.embedding_dim!r} and network_kwargs"
                f"[{dim_key!r}]={self.network_kwargs[dim_key]!r}; set only one."
            )
        derived = {"in_channels": c, "input_size": (h, w), dim_key: dim}
        if base is LeNet:
            derived.update(feature_activation=False, num_classes=n_classes)
        return {base: derived}

    def _probe_forward(self, module, x):
        return _embed(module, x)

    def _embeddings(self, X: torch.Tensor) -> torch.Tensor:
        """Float32 embeddings of validated images (in batches, eval mode)."""
        return self._forward(lambda m: lambda xb: _embed(m, xb), X)

    # -- fit ------------------------------------------------------------------
    def _default_epochs(self) -> int:
        return 30

    def _prepare(self, X, y, X_outliers):
        name = type(self).__name__
        if y is None:
            raise ValueError(
                f"{name} needs class labels: call fit(X, y) with y holding at least "
                "2 in-distribution classes (different-class pairs need them) and "
                "optionally -1 for known out-of-distribution images. Got y=None."
            )
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                f"{name} needs at least 2 in-distribution classes in y to form "
                f"different-class pairs; got only the class {classes.tolist()}."
            )
        if X_outliers is not None and self.similar_ratio + 2 * self.ood_ratio > 1:
            raise ValueError(
                f"The 'similar_ratio' and 'ood_ratio' parameters of {name} must "
                "satisfy similar_ratio + 2 * ood_ratio <= 1 (each mining pair "
                "takes one left image); got similar_ratio="
                f"{self.similar_ratio!r} and ood_ratio={self.ood_ratio!r}."
            )
        self.classes_ = classes
        return y_idx

    def _fit_network(self, X, codes, X_outliers, rng):
        classes = self.classes_
        missing = np.setdiff1d(np.arange(classes.size), codes)
        if missing.size:
            raise ValueError(
                f"{type(self).__name__}: the classes {classes[missing].tolist()} "
                "have no image among those that train the network "
                f"(validation_fraction={self.validation_fraction!r} holds images "
                f"out, or cv={self.cv} folds with validation_fraction=0); give "
                "more images per class or lower validation_fraction."
            )
        defaults = self._derived_kwargs(classes.size)
        default = self._default_network()
        module, probe = self._build(defaults, default, rng, X)
        self.embedding_dim_ = int(probe.shape[1])

        # Training set: in-distribution images, then the OOD images (-1).
        parts, labels = [X], [codes]
        if X_outliers is not None:
            parts.append(X_outliers)
            labels.append(np.full(X_outliers.shape[0], -1, dtype=np.int64))
        images = self._pixels(torch.cat(parts))
        labels = np.concatenate(labels).astype(np.int64)
        sampler = PairSampler(
            labels,
            similar_ratio=self.similar_ratio,
            ood_ratio=self.ood_ratio,
            ood_every=self.ood_every,
        )
        criterion = ContrastiveLoss(self.margin, squared=self.squared)
        self.history_ = self._train(
            module,
            lambda mod, batch: self._batch_loss(mod, batch, criterion),
            self._pair_batches(images, labels, sampler),
            rng,
            X=X,
        )
        self.module_ = self._finish_module(module)
        E = self._embeddings(X).numpy().astype(np.float64)
        self.centers_ = np.stack(
            [E[codes == k].mean(axis=0) for k in range(classes.size)]
        )

    def _pair_batches(self, images: torch.Tensor, labels, sampler: PairSampler):
        """Batch factory for ``train_module``: ``(images, same)`` per batch.

        ``images`` holds the ``n_left`` left images followed by their
        ``n_left`` partners, so that pair ``i`` is ``(i, n_left + i)``.
        """
        in_idx = np.flatnonzero(labels >= 0)
        n_in = in_idx.size
        n_left = max(1, min(self.batch_size // 2, n_in))
        n_batches = n_in // n_left

        def factory(epoch: int, generator: torch.Generator):
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            rng = np.random.RandomState(seed)
            perm = in_idx[rng.permutation(n_in)]
            for b in range(n_batches):
                left = perm[b * n_left : (b + 1) * n_left]
                right, same = sampler.sample(
                    left, batch_index=epoch * n_batches + b, random_state=rng
                )
                idx = torch.from_numpy(np.concatenate([left, right]))
                yield images[idx], torch.from_numpy(same)

        return factory

    @staticmethod
    def _batch_loss(module, batch, criterion) -> torch.Tensor:
        images, same = batch
        emb = _embed(module, images)  # one forward pass for both sides
        n_left = same.shape[0]
        return criterion(emb[:n_left], emb[n_left:], same)

    # -- scoring ----------------------------------------------------------------
    def _score(self, X):
        E = self._embeddings(X).numpy().astype(np.float64)
        return -_squared_distances(E, self.centers_).min(axis=1)

    def transform(self, X):
        """Embed images with the trained network.

        Parameters
        ----------
        X : array-like or torch.Tensor of images
            Images of the shape and pixel type seen in ``fit``.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, embedding_dim_), float32
            Embeddings (network in eval mode), e.g. to fit another detector
            such as :class:`~sklearn_ood.MahalanobisDetector` on them.
        """
        check_is_fitted(self)
        return self._embeddings(self._validate_score_input(X)).numpy()

    def class_distances(self, X):
        """Squared Euclidean distance of each embedding to each class centre.

        Parameters
        ----------
        X : array-like or torch.Tensor of images
            Images of the shape and pixel type seen in ``fit``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_classes)
            Column ``k`` is the squared distance to ``centers_[k]``, the centre
            of class ``classes_[k]``.
        """
        return _squared_distances(self.transform(X).astype(np.float64), self.centers_)

    def predict_class(self, X):
        """Classify images by the nearest class centre.

        Parameters
        ----------
        X : array-like or torch.Tensor of images
            Images of the shape and pixel type seen in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The label in ``classes_`` of the nearest centre.
        """
        distances = self.class_distances(X)
        return self.classes_[np.argmin(distances, axis=1)]
