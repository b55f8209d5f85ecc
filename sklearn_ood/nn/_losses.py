"""Losses for deep OOD detectors: center loss and contrastive loss.

* :class:`CenterLoss` (Wen et al., 2016), used by Varedzhan et al. (2021)
  together with softmax cross-entropy, ``L = L_S + lambda * L_C``.
* :class:`ContrastiveLoss` (Hadsell et al., 2006), used by Masana et al.
  (2018) on pairs of embeddings, with the linear form of their released code
  as default and the squared form of their paper's Eq. 1 as an option.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import nn

__all__ = ["CenterLoss", "ContrastiveLoss"]


def _check_int(owner: str, name: str, value, low: int) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be an int in the range "
            f"[{low}, inf). Got {value!r} instead."
        )
    return int(value)


def _check_real(owner: str, name: str, value, low: float, high: float, closed: str):
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        lo_ok = value >= low if closed[0] == "[" else value > low
        hi_ok = value <= high if closed[1] == "]" else value < high
        ok = lo_ok and hi_ok
    if not ok:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float in the range "
            f"{closed[0]}{low}, {high}{closed[1]}. Got {value!r} instead."
        )
    return value


class CenterLoss(nn.Module):
    """Center loss of Wen et al. (2016) with their center update rule.

    ``L_C = 1/2 * sum_i ||x_i - c_{y_i}||^2`` over the mini-batch (Wen et al.,
    Eq. 2, and Varedzhan et al., Sec. II), ignoring samples labelled ``-1``.
    The detector weights it by its ``lambda``.

    Parameters
    ----------
    num_classes : int
        Number of classes; labels are ``0 .. num_classes - 1`` (``-1`` is
        ignored).
    feature_dim : int
        Dimension ``d`` of the deep features.
    alpha : float, default=0.5
        Learning rate of the centers in Wen et al.'s update, in ``[0, 1]``
        (0 freezes them).
    reduction : {"sum", "mean"}, default="sum"
        ``"sum"`` is the papers' formula; ``"mean"`` divides it by the number
        of non-ignored samples, which makes ``lambda`` independent of the
        batch size.

    Attributes
    ----------
    centers : torch.Tensor of shape (num_classes, feature_dim)
        Class centers, a float32 buffer (saved in the ``state_dict``, moved by
        ``.to()``, never a parameter and never touched by the optimizer),
        initialised to zeros as in Wen et al.

    Notes
    -----
    The gradient of the loss flows to the features only. The centers follow
    Wen et al.'s rule (their Eq. 4 and Algorithm 1), which the training step
    applies by calling :meth:`update_centers` after computing the loss: for
    each class ``j`` with ``n_j`` samples in the batch,
    ``delta_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)`` and
    ``c_j <- c_j - alpha * delta_j``, with the features detached. Varedzhan et
    al. do not say how they update the centers; this rule is our choice.

    References
    ----------
    .. [1] Y. Wen, K. Zhang, Z. Li and Y. Qiao, "A Discriminative Feature
       Learning Approach for Deep Face Recognition", ECCV 2016.
    .. [2] S. Varedzhan, A. Yurkov, K. Ushenin, "Anomaly Detection in Image
       Datasets Using Convolutional Neural Networks, Center Loss, and
       Mahalanobis Distance", 2021.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import CenterLoss
    >>> loss_fn = CenterLoss(num_classes=2, feature_dim=2)
    >>> x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    >>> y = torch.tensor([0, 0, 1])
    >>> loss_fn(x, y)
    tensor(7.)
    >>> loss_fn.update_centers(x, y)
    >>> loss_fn.centers
    tensor([[0.6667, 0.0000],
            [0.0000, 0.5000]])
    """

    centers: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        *,
        alpha: float = 0.5,
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_classes = _check_int(owner, "num_classes", num_classes, 1)
        self.feature_dim = _check_int(owner, "feature_dim", feature_dim, 1)
        self.alpha = _check_real(owner, "alpha", alpha, 0.0, 1.0, "[]")
        if reduction not in ("sum", "mean"):
            raise ValueError(
                f"The 'reduction' parameter of {owner} must be one of "
                f"{{'sum', 'mean'}}. Got {reduction!r} instead."
            )
        self.reduction = reduction
        self.register_buffer("centers", torch.zeros(self.num_classes, self.feature_dim))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, feature_dim={self.feature_dim}, "
            f"alpha={self.alpha}, reduction={self.reduction!r}"
        )

    def _check_inputs(self, features, y) -> torch.Tensor:
        if not isinstance(features, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("features and y must be torch tensors.")
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(
                f"features must have shape (n_samples, {self.feature_dim}). "
                f"Got shape {tuple(features.shape)} instead."
            )
        if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
            raise TypeError(f"y must be an integer tensor. Got dtype {y.dtype}.")
        if tuple(y.shape) != (features.shape[0],):
            raise ValueError(
                f"y must have shape ({features.shape[0]},), one label per "
                f"sample. Got shape {tuple(y.shape)} instead."
            )
        y = y.to(device=features.device, dtype=torch.int64)
        if y.numel() and (int(y.min()) < -1 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"y must contain labels in [0, {self.num_classes}) or -1 for "
                f"ignored samples. Got values in [{int(y.min())}, "
                f"{int(y.max())}] instead."
            )
        return y

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Center loss of a mini-batch.

        Parameters
        ----------
        features : torch.Tensor of shape (n_samples, feature_dim)
            Deep features.
        y : torch.Tensor of int of shape (n_samples,)
            Class labels; samples labelled ``-1`` are ignored.

        Returns
        -------
        torch.Tensor
            Scalar loss in the dtype of ``features``; zero (still attached to
            the graph) when every sample is ignored.
        """
        y = self._check_inputs(features, y)
        keep = y >= 0
        x = features[keep]
        c = self.centers.to(device=features.device, dtype=features.dtype)[y[keep]]
        loss = 0.5 * (x - c).pow(2).sum()
        if self.reduction == "mean" and x.shape[0] > 0:
            loss = loss / x.shape[0]
        return loss

    @torch.no_grad()
    def update_centers(self, features: torch.Tensor, y: torch.Tensor) -> None:
        """Move the centers by one step of Wen et al.'s rule (in place).

        Parameters
        ----------
        features : torch.Tensor of shape (n_samples, feature_dim)
            Deep features of the batch (detached here).
        y : torch.Tensor of int of shape (n_samples,)
            Class labels; samples labelled ``-1`` are ignored.
        """
        y = self._check_inputs(features, y)
        keep = y >= 0
        x = features.detach()[keep].to(
            device=self.centers.device, dtype=self.centers.dtype
        )
        y = y[keep].to(self.centers.device)
        counts = torch.bincount(y, minlength=self.num_classes).to(x.dtype)
        sums = torch.zeros_like(self.centers).index_add_(0, y, x)
        delta = (counts[:, None] * self.centers - sums) / (1.0 + counts[:, None])
        self.centers.sub_(self.alpha * delta)


class ContrastiveLoss(nn.Module):
    """Contrastive loss on pairs of embeddings (Hadsell et al., 2006).

    With ``d = sqrt(||e1 - e2||^2 + eps)`` and ``s`` = 1 for a same-class
    pair, 0 otherwise:

    * linear form (``squared=False``, Masana et al.'s released code, default):
      ``0.5 * mean(s * d + (1 - s) * max(0, margin - d))``;
    * squared form (``squared=True``, their paper's Eq. 1):
      ``0.5 * mean(s * ||e1 - e2||^2 + (1 - s) * max(0, margin - d)^2)``.

    Parameters
    ----------
    margin : float, default=10.0
        Margin ``m`` beyond which dissimilar pairs cost nothing (``siam_margin``
        of the released code).
    squared : bool, default=False
        Use the squared (paper) form instead of the linear (code) form.
    eps : float, default=1e-12
        Added under the square root so that the gradient stays finite when two
        embeddings coincide (e.g. a similar pair drawn as the same image). The
        original code has no such guard (a deviation; ``eps=0`` reproduces it).

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import ContrastiveLoss
    >>> e1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    >>> e2 = torch.tensor([[3.0, 4.0], [3.0, 4.0]])
    >>> same = torch.tensor([True, False])
    >>> ContrastiveLoss(margin=10.0)(e1, e2, same)
    tensor(2.5000)
    >>> ContrastiveLoss(margin=10.0, squared=True)(e1, e2, same)
    tensor(12.5000)
    """

    def __init__(
        self, margin: float = 10.0, *, squared: bool = False, eps: float = 1e-12
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.margin = _check_real(owner, "margin", margin, 0.0, float("inf"), "()")
        if not isinstance(squared, bool):
            raise ValueError(
                f"The 'squared' parameter of {owner} must be an instance of "
                f"'bool'. Got {squared!r} instead."
            )
        self.squared = squared
        self.eps = _check_real(owner, "eps", eps, 0.0, float("inf"), "[)")

    def extra_repr(self) -> str:
        return f"margin={self.margin}, squared={self.squared}, eps={self.eps}"

    def forward(
        self, e1: torch.Tensor, e2: torch.Tensor, same: torch.Tensor
    ) -> torch.Tensor:
        """Mean contrastive loss over the pairs ``(e1[i], e2[i])``.

        Parameters
        ----------
        e1, e2 : torch.Tensor of shape (n_pairs, n_features)
            Embeddings of the left and right items of each pair.
        same : torch.Tensor of shape (n_pairs,)
            1/True for a same-class pair, 0/False otherwise.

        Returns
        -------
        torch.Tensor
            Scalar loss in the dtype of ``e1``.
        """
        for name, e in (("e1", e1), ("e2", e2), ("same", same)):
            if not isinstance(e, torch.Tensor):
                raise TypeError(
                    f"{name} must be a torch.Tensor. Got {type(e).__name__}."
                )
        if e1.ndim != 2 or e1.shape != e2.shape:
            raise ValueError(
                "e1 and e2 must be 2-d tensors of the same shape (n_pairs, "
                f"n_features). Got shapes {tuple(e1.shape)} and "
                f"{tuple(e2.shape)} instead."
            )
        if e1.shape[0] == 0:
            raise ValueError("The contrastive loss needs at least one pair.")
        if tuple(same.shape) != (e1.shape[0],):
            raise ValueError(
                f"same must have shape ({e1.shape[0]},), one flag per pair. "
                f"Got shape {tuple(same.shape)} instead."
            )
        s = same.to(device=e1.device, dtype=e1.dtype)
        sq = (e1 - e2).pow(2).sum(dim=1)
        d = torch.sqrt(sq + self.eps)
        hinge = torch.clamp(self.margin - d, min=0.0)
        if self.squared:
            per_pair = s * sq + (1.0 - s) * hinge.pow(2)
        else:
            per_pair = s * d + (1.0 - s) * hinge
        return 0.5 * per_pair.mean()
