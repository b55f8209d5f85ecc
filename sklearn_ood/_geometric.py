"""Anomaly detection with geometric transformations (Golan & El-Yaniv, 2018).

A network learns to tell which of ``T`` geometric transformations (flips,
shifts, quarter turns) was applied to an image of the normal class. A normal
image is one whose transformed copies the network recognises as expected: the
softmax outputs on each transformed copy are scored under a Dirichlet
distribution fitted to the outputs on the training images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._network_base import BaseNetworkDetector
from .images import to_minus1_1
from .nn._architectures import WideResNet
from .nn._device import resolve_device
from .nn._transforms import PRESETS, GeometricTransformations
from .stats import dirichlet_mle, dirichlet_normality_score

__all__ = ["DirichletTransformDetector"]

#: The paper trains for ``ceil(200 / n_transforms)`` epochs (3 for 72).
_EPOCH_BUDGET = 200
#: Keras' Adam epsilon (``K.epsilon()``), which the authors' code uses.
_KERAS_ADAM_EPS = 1e-7
#: Presets that take a ``shift``.
_SHIFT_PRESETS = ("geometric72", "intuition_shift")


def _head(out) -> torch.Tensor:
    """Transformation logits of a network output (first element of a pair)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _has_features(est) -> bool:
    module = est.__dict__.get("module_")
    if module is not None:
        return hasattr(module, "forward_features")
    return est.network is None or hasattr(est.network, "forward_features")


def _may_have_class_head(est) -> bool:
    fitted = "module_" in est.__dict__
    if (fitted and "classes_" not in est.__dict__) or (
        not fitted and est.class_head is False
    ):
        raise AttributeError(
            "predict_class is available only when a class head is trained: "
            "class_head=True or 'auto' and labels y with at least two classes "
            "at fit."
        )
    return True


class DirichletTransformDetector(BaseNetworkDetector):
    """Geometric-transformation anomaly detector with the Dirichlet score.

    The method of Golan & El-Yaniv (2018), "GEOM". A network (by default the
    Wide ResNet WRN-10-4 of the paper) is trained to classify which of ``T``
    geometric transformations was applied to a normal training image, on the
    self-labelled pairs (image ``i``, transformation ``t``). Then, for every
    transformation ``t``, a Dirichlet distribution ``alpha_[t]`` is fitted by
    maximum likelihood to the softmax outputs on ``T_t(x)`` of the training
    images, and a new image scores

    ``(1/T) sum_t sum_k (alpha_[t, k] - 1) log softmax(f(T_t(x)))_k``,

    the Dirichlet log-likelihood without its constant normaliser. Higher means
    more normal.

    Parameters
    ----------
    transformations : str, GeometricTransformations or list, \
default="geometric72"
        ``"geometric72"``: the paper's 72 transformations (flip x shifts
        ``(0, -shift, shift)`` on rows and columns x four quarter turns, in
        the authors' order). ``"flip_rot8"``: flip x quarter turns (8).
        ``"intuition_flip"`` / ``"intuition_shift"``: the pairs {identity,
        horizontal flip} and {identity, shift by ``shift`` pixels along the
        columns} of the paper's Sec. 6. Or a
        :class:`~sklearn_ood.nn._transforms.GeometricTransformations`, or a
        list of ``(flip, tx, ty, k)`` tuples.
    shift : int, default=None
        Shift magnitude in pixels for ``"geometric72"`` (None: 8, the paper's
        value for 32x32 images; it uses 16 for 64x64) and ``"intuition_shift"``
        (None: 7). Must be None for the other choices of ``transformations``.
    pad_to : "auto", int or None, default="auto"
        Padding applied, in raw pixel space (so the padded pixels are 0, i.e.
        -1 after scaling), before the transformations. ``"auto"``: 28x28
        images are padded by 2 pixels on each side to 32x32, as the paper does
        for MNIST and Fashion-MNIST; other sizes are left as they are. An
        integer pads both sides to that size (centred, an odd extra pixel at
        the bottom/right). None: no padding.
    network : torch.nn.Module subclass, instance or None, default=None
        None: :class:`~sklearn_ood.nn.WideResNet` with ``depth=10,
        widen_factor=4``, ``num_classes=T``, the input's channel count and,
        with a class head, ``num_classes_aux=n_classes``. A ``WideResNet``
        subclass gets the same derived arguments; any of them can be
        overridden by ``network_kwargs``. Another class is called with
        ``network_kwargs`` only; an instance is deep-copied (never modified).
        The network must return ``T`` logits per image, or a pair
        ``(transformation_logits, class_logits)`` when a class head is used.
        :meth:`transform` needs a ``forward_features`` method.
    network_kwargs : dict, default=None
        Keyword arguments of the network class.
    epochs : int, default=None
        Passes over all (image, transformation) pairs. None:
        ``ceil(200 / T)`` as the paper (3 for 72 transformations).
    batch_size : int, default=128
        Pairs per training batch (128 in the paper) and images per forward
        pass when scoring; scores do not depend on it.
    lr : float, default=1e-3
        Learning rate (Keras' Adam default, used by the paper).
    optimizer : {"adam", "adamw", "sgd"} or torch.optim.Optimizer subclass, \
default="adam"
        Optimiser; ``"adam"`` uses Keras' epsilon 1e-7, as the authors' code.
    weight_decay : float, default=5e-4
        Weight decay of the optimiser; with Adam the coupled L2 penalty,
        applied to all parameters: the paper's Keras L2 regularisers
        ``2.5e-4 * sum(w**2)`` amount to ``5e-4`` here.
    lr_schedule : (milestones, gamma) or None, default=None
        Multiply the learning rate by ``gamma`` after each epoch in
        ``milestones`` (the paper uses none).
    score : {"dirichlet", "simplified"}, default="dirichlet"
        ``"dirichlet"``: the Dirichlet normality score above.
        ``"simplified"``: ``(1/T) sum_t softmax(f(T_t(x)))_t``, the mean
        probability of the right transformation, used by the paper's
        multi-class and intuition experiments. The value at ``fit`` is used
        (``offset_`` depends on it).
    class_head : bool or "auto", default="auto"
        Train a second head that predicts the class labels ``y``, jointly with
        the transformation head (the sum of both cross-entropies), the
        multi-class variant of the paper's Sec. 5.5. Only the transformation
        head is used for scoring; :meth:`predict_class` uses the class head.
        ``"auto"``: when ``y`` holds at least two classes (labels ``-1`` are
        known outliers and are left out). True requires such labels.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where training and scoring run: ``"auto"`` is the first GPU when CUDA
        is available and the CPU otherwise; a CUDA device asked for on a
        machine without CUDA falls back to the CPU with a
        :class:`~sklearn_ood.nn.DeviceWarning`.
    random_state : int, RandomState instance or None, default=None
        Seeds the calibration split (or folds), the network's initialisation
        and the training (shuffling), in this order. With an int, CPU results
        are deterministic and the global torch seed is neither used nor
        changed.
    verbose : int, default=0
        Progress output of the training loop.
    validation_fraction : float in [0, 1), default=0.1
        Share of the training images held out for the calibration scores
        (see Notes). 0 trains on every image and cross-fits ``cv`` networks
        for the calibration scores.
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
    transformations_ : GeometricTransformations
        The transformations used, in index order.
    n_transforms_ : int
        ``T``.
    alpha_ : ndarray of shape (n_transforms_, n_transforms_)
        Dirichlet parameters: row ``t`` is fitted to the softmax outputs on
        the ``t``-th transformation of the training images.
    epochs_ : int
        Number of epochs trained.
    history_ : TrainingHistory
        Mean training loss of each epoch (a list; see
        :class:`~sklearn_ood.nn.TrainingHistory`).
    input_shape_ : tuple of int
        ``(C, H, W)`` the network sees, after padding.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the images passed to ``fit``; enforced when scoring.
    classes_ : ndarray
        Class labels of the class head (only when one was trained).
    calibration_scores_ : ndarray
        Scores of the held-out images (or the cross-fitted scores of every
        image with ``validation_fraction=0``).
    offset_ : float
        Threshold of ``decision_function``, from ``calibration_scores_``.

    See Also
    --------
    sklearn_ood.stats.dirichlet_mle : The Dirichlet fit.
    sklearn_ood.nn.WideResNet : The default network.

    Notes
    -----
    **Input.** Images ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``.
    uint8 images are scaled to [-1, 1] by ``2 * (x / 255) - 1`` as the
    authors' code; **float images are assumed to lie in [0, 1]** (uint8
    divided by 255) and are mapped by ``2 * x - 1`` (a warning is emitted at
    ``fit`` otherwise). Score images with the same dtype and size as in fit.

    **Training.** Each epoch is a shuffled pass over all ``N * T`` pairs
    (image, transformation), the set the authors build with
    ``np.repeat``/``np.tile``; the transformed batches are made on the fly on
    the device, so the ``T`` copies of the data are never stored. Adam with
    Keras' epsilon 1e-7 and categorical cross-entropy (without Keras'
    clipping of the probabilities to ``[1e-7, 1 - 1e-7]``).

    **Calibration.** Networks memorise their training images, so ``fit``
    holds out ``validation_fraction`` of the images: the network and the
    Dirichlet parameters are fitted on the rest (the Dirichlet on the same
    images the network was trained on, as the authors' code does), and the
    scores of the held-out images are the calibration scores that set
    ``offset_`` and :meth:`p_values`. The paper trains on all images: use
    ``validation_fraction=0``, which trains the final network on every image
    and takes the calibration scores from ``cv`` cross-fitted networks (each
    trained on all folds but one, scoring that fold). The Dirichlet score's
    scale follows each network's ``alpha_``, so cross-fitted scores match the
    final network's only when training is stable (enough images and epochs);
    on small data, or briefly trained networks, they can flag up to twice
    ``contamination`` of new normal images (the cross-conformal worst case):
    prefer a held-out share there.

    **Degenerate input.** Copies of one image (constant images, for example)
    are refused: nothing distinguishes them, and the Dirichlet concentration
    of identical softmax outputs is infinite. So are images whose softmax
    outputs do not vary, and training that overflows float32 (pixel values
    far beyond [0, 1]); the errors name ``X``.

    **Numerics.** Softmax outputs of exactly 0 are replaced by the smallest
    normal float64 before the logarithms (the original has no safeguard; any
    other value is used as is); see :func:`~sklearn_ood.stats.dirichlet_mle`.
    Scoring costs ``T`` forward passes per image.

    References
    ----------
    .. [1] I. Golan and R. El-Yaniv, "Deep Anomaly Detection Using Geometric
       Transformations", NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood import DirichletTransformDetector
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(12, 8, 8) * 255).astype(np.uint8)
    >>> det = DirichletTransformDetector(
    ...     transformations="intuition_flip", network_kwargs={"widen_factor": 1},
    ...     epochs=1, random_state=0, device="cpu").fit(X)
    >>> det.alpha_.shape, det.score_samples(X[:3]).shape
    ((2, 2), (3,))
    """

    _parameter_constraints: dict = {
        **BaseNetworkDetector._parameter_constraints,
        "transformations": [
            StrOptions(set(PRESETS)),
            GeometricTransformations,
            list,
            tuple,
        ],
        "shift": [Interval(Integral, 1, None, closed="left"), None],
        "pad_to": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "score": [StrOptions({"dirichlet", "simplified"})],
        "class_head": ["boolean", StrOptions({"auto"})],
    }

    #: At least two images to fit the Dirichlet and one to hold out.
    _min_samples = 3

    def __init__(
        self,
        *,
        transformations: str
        | GeometricTransformations
        | list[tuple[bool, int, int, int]] = "geometric72",
        shift: int | None = None,
        pad_to: str | int | None = "auto",
        network: type[nn.Module] | nn.Module | None = None,
        network_kwargs: dict | None = None,
        epochs: int | None = None,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: str | type[torch.optim.Optimizer] = "adam",
        weight_decay: float = 5e-4,
        lr_schedule: tuple | None = None,
        score: str = "dirichlet",
        class_head: bool | str = "auto",
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        validation_fraction: float = 0.1,
        cv: int = 5,
        contamination: str | float = "auto",
    ) -> None:
        self.transformations = transformations
        self.shift = shift
        self.pad_to = pad_to
        self.network = network
        self.network_kwargs = network_kwargs
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.score = score
        self.class_head = class_head
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.contamination = contamination

    # ------------------------------------------------------------------ set-up
    def _make_transformations(self) -> GeometricTransformations:
        spec = self.transformations
        if isinstance(spec, str):
            if self.shift is not None and spec not in _SHIFT_PRESETS:
                raise ValueError(
                    f"The 'shift' parameter of {type(self).__name__} applies only "
                    f"to transformations in {_SHIFT_PRESETS}; it must be None "
                    f"with transformations={spec!r}. Got shift={self.shift!r}."
                )
            return GeometricTransformations.from_preset(spec, shift=self.shift)
        if self.shift is not None:
            raise ValueError(
                f"The 'shift' parameter of {type(self).__name__} must be None "
                "when 'transformations' is given explicitly (the shifts are part "
                f"of the transformations). Got shift={self.shift!r}."
            )
        if isinstance(spec, GeometricTransformations):
            return GeometricTransformations(transformations=spec.params)
        return GeometricTransformations(transformations=list(spec))

    def _padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` padding for ``F.pad``."""
        if self.pad_to is None:
            return (0, 0, 0, 0)
        if self.pad_to == "auto":
            return (2, 2, 2, 2) if (height, width) == (28, 28) else (0, 0, 0, 0)
        size = int(self.pad_to)
        if size < height or size < width:
            raise ValueError(
                f"The 'pad_to' parameter of {type(self).__name__} must be at least "
                f"the image size {height}x{width}. Got pad_to={size} instead."
            )
        top, left = (size - height) // 2, (size - width) // 2
        return (left, size - width - left, top, size - height - top)

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Scale a raw batch to [-1, 1] and pad it (padding = raw 0 = -1)."""
        x = to_minus1_1(x) if self._input_info.was_uint8 else 2.0 * x - 1.0
        if any(self._pad):
            x = F.pad(x, self._pad, mode="constant", value=-1.0)
        return x

    def _wrn_kwargs(self) -> dict:
        """Arguments of the Wide ResNet derived from the data (see ``network``)."""
        kwargs = {
            "depth": 10,
            "widen_factor": 4,
            "num_classes": self.n_transforms_,
            "in_channels": self.image_shape_[0],
        }
        if "classes_" in self.__dict__:
            kwargs["num_classes_aux"] = len(self.classes_)
        return kwargs

    def _check_output(self, out, batch_len: int, class_head: bool):
        """Split a network output into (transformation, class) logits, checked."""
        name = type(self).__name__
        if class_head:
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise ValueError(
                    f"With a class head, the network of {name} must return a pair "
                    "(transformation_logits, class_logits); got "
                    f"{type(out).__name__}. Use network=None (WideResNet with "
                    "num_classes_aux) or class_head=False."
                )
            logits, class_logits = out
        else:
            logits, class_logits = _head(out), None
        if (
            not isinstance(logits, torch.Tensor)
            or logits.ndim != 2
            or tuple(logits.shape) != (batch_len, self.n_transforms_)
        ):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else None
            raise ValueError(
                f"The network of {name} must output one logit per transformation, "
                f"shape (batch, {self.n_transforms_}); got {shape}."
            )
        if class_head and (
            not isinstance(class_logits, torch.Tensor)
            or tuple(class_logits.shape) != (batch_len, len(self.classes_))
        ):
            raise ValueError(
                f"The class head of the network of {name} must output one logit "
                f"per class, shape (batch, {len(self.classes_)}); got "
                f"{getattr(class_logits, 'shape', None)}."
            )
        return logits, class_logits

    # --------------------------------------------------------------------- fit
    def _default_epochs(self) -> int:
        return math.ceil(_EPOCH_BUDGET / self.n_transforms_)

    def _prepare(self, X, y, X_outliers):
        for attr in ("classes_", "module_"):
            self.__dict__.pop(attr, None)
        if not self._input_info.was_uint8:
            lo, hi = float(X.min()), float(X.max())
            if lo < 0.0 or hi > 1.0:
                warnings.warn(
                    f"X holds float values in [{lo:.4g}, {hi:.4g}]; float images "
                    f"are assumed to lie in [0, 1] and are mapped to [-1, 1] by "
                    "2 * x - 1. Pass uint8 images (0..255) or rescale them.",
                    UserWarning,
                    stacklevel=4,
                )
        gt = self._make_transformations()
        c, h, w = self.image_shape_
        self._pad = self._padding(h, w)
        left, right, top, bottom = self._pad
        self.input_shape_ = (c, h + top + bottom, w + left + right)
        gt.source_indices(*self.input_shape_[1:])  # checks sizes before training
        self.transformations_ = gt
        self.n_transforms_ = gt.n_transforms

        classes, y_enc = None, None
        if y is not None and self.class_head is not False:
            classes, y_enc = np.unique(y, return_inverse=True)
        if self.class_head is True and (classes is None or len(classes) < 2):
            raise ValueError(
                f"class_head=True needs class labels y with at least two classes "
                f"(besides -1); got "
                f"{'y=None' if classes is None else f'{len(classes)} class'}."
            )
        if classes is None or len(classes) < 2:
            return None
        self.classes_ = classes
        return y_enc

    def _fit_network(self, X, codes, X_outliers, rng):
        use_head = codes is not None
        n_t = self.n_transforms_
        gt = self.transformations_
        module, out = self._build({WideResNet: self._wrn_kwargs()}, WideResNet, rng, X)
        self._check_output(out, min(2, X.shape[0]), use_head)

        dev = resolve_device(self.device)
        images = X.to(dev)
        labels = (
            torch.as_tensor(codes, dtype=torch.int64, device=dev) if use_head else None
        )
        n_fit, bs = images.shape[0], int(self.batch_size)

        def pairs(epoch, generator):
            order = torch.randperm(n_fit * n_t, generator=generator)
            for start in range(0, n_fit * n_t, bs):
                idx = order[start : start + bs]
                yield idx // n_t, idx % n_t

        def loss_fn(net, batch):
            i, t = batch
            x = gt.apply(self._pixels(images[i]), t)
            logits, class_logits = self._check_output(net(x), len(i), use_head)
            loss = F.cross_entropy(logits, t)
            if use_head:
                loss = loss + F.cross_entropy(class_logits, labels[i])
            return loss

        adam = isinstance(self.optimizer, str) and self.optimizer == "adam"
        self.history_ = self._train(
            module,
            loss_fn,
            pairs,
            rng,
            X=X,
            optimizer_kwargs={"eps": _KERAS_ADAM_EPS} if adam else None,
        )
        self.module_ = self._finish_module(module)
        self._fitted_score = self.score

        P = np.stack([q for _, q in self._iter_proba(X)])
        try:
            self.alpha_ = dirichlet_mle(P)
        except (ValueError, FloatingPointError) as exc:
            raise ValueError(
                f"{type(self).__name__} cannot fit its Dirichlet distributions: "
                "the network's softmax outputs on the transformed training images "
                "X do not vary enough (the maximum-likelihood concentration "
                "diverges). X's images are too similar to each other, too small "
                "or of too extreme values for the network to tell them apart "
                f"(pixel values in {self._value_range(X)}, images "
                f"{self.image_shape_[1]}x{self.image_shape_[2]}). ({exc})"
            ) from exc

    # ----------------------------------------------------------------- scoring
    def _iter_proba(self, x: torch.Tensor) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(t, softmax(f(T_t(x))))`` as float32 arrays ``(N, T)``."""
        gt = self.transformations_
        for t in range(self.n_transforms_):
            logits = self._forward(
                lambda m: lambda xb: _head(m(xb)),
                x,
                preprocess=lambda xb, t=t: gt.apply(self._pixels(xb), t),
            )
            self._check_output(logits, x.shape[0], False)
            yield t, torch.softmax(logits, dim=1).numpy()

    def _score(self, X):
        score = np.zeros(X.shape[0])
        for t, q in self._iter_proba(X):
            if self._fitted_score == "simplified":
                score += q[:, t]
            else:
                score += dirichlet_normality_score(self.alpha_[t], q)
        return score / self.n_transforms_

    def transformation_proba(self, X) -> np.ndarray:
        """Softmax outputs of the transformation head on every transformed copy.

        Parameters
        ----------
        X : array-like of images
            Images like those passed to ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_transforms_, n_samples, n_transforms_)
            ``proba[t, n]`` is the softmax output (float32) on the ``t``-th
            transformation of image ``n``; ``proba[t, n, t]`` is the
            probability of the right transformation. Both scores derive from
            it: ``dirichlet_normality_score(alpha_, proba)`` and
            ``mean_t proba[t, :, t]``. Memory: ``T * T`` floats per image.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import DirichletTransformDetector
        >>> X = (np.random.RandomState(0).rand(12, 8, 8) * 255).astype(np.uint8)
        >>> det = DirichletTransformDetector(
        ...     transformations="intuition_flip", network_kwargs={"widen_factor": 1},
        ...     epochs=1, random_state=0, device="cpu").fit(X)
        >>> det.transformation_proba(X[:5]).shape
        (2, 5, 2)
        """
        check_is_fitted(self)
        x = self._validate_score_input(X)
        return np.stack([q for _, q in self._iter_proba(x)])

    def _forward_plain(self, X, fn_name: str):
        x = self._validate_score_input(X)
        return self._forward(lambda m: getattr(m, fn_name), x)

    @available_if(_has_features)
    def transform(self, X) -> np.ndarray:
        """Penultimate features of the network on the (untransformed) images.

        The images are scaled and padded as in ``fit``; no geometric
        transformation is applied. Needs a network with a
        ``forward_features`` method (the default Wide ResNet has one).

        Parameters
        ----------
        X : array-like of images
            Images like those passed to ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features)
            Float32 features (``64 * widen_factor`` for the Wide ResNet).

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import DirichletTransformDetector
        >>> X = (np.random.RandomState(0).rand(12, 8, 8) * 255).astype(np.uint8)
        >>> det = DirichletTransformDetector(
        ...     transformations="intuition_flip", network_kwargs={"widen_factor": 1},
        ...     epochs=1, random_state=0, device="cpu").fit(X)
        >>> det.transform(X).shape
        (12, 64)
        """
        check_is_fitted(self)
        features = self._forward_plain(X, "forward_features")
        return features.numpy().astype(np.float32, copy=False)

    @available_if(_may_have_class_head)
    def predict_class(self, X) -> np.ndarray:
        """Class predicted by the class head on the (untransformed) images.

        Available when a class head was trained (``class_head`` and labels
        ``y`` with at least two classes at ``fit``).

        Parameters
        ----------
        X : array-like of images
            Images like those passed to ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Labels from ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ood import DirichletTransformDetector
        >>> rng = np.random.RandomState(0)
        >>> X = (rng.rand(16, 8, 8) * 255).astype(np.uint8)
        >>> y = np.repeat(["a", "b"], 8)
        >>> det = DirichletTransformDetector(
        ...     transformations="intuition_flip", network_kwargs={"widen_factor": 1},
        ...     epochs=1, random_state=0, device="cpu").fit(X, y)
        >>> det.predict_class(X[:2]).shape
        (2,)
        """
        check_is_fitted(self)
        out = self._forward_plain(X, "__call__")
        class_logits = self._check_output(out, out[0].shape[0], True)[1]
        return self.classes_[class_logits.argmax(dim=1).numpy()]
