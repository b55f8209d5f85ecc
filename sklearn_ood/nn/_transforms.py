"""Geometric transformations of image batches (Golan & El-Yaniv, 2018).

Each transformation is a tuple ``(flip, tx, ty, k)`` applied to one image in
this fixed order, exactly as the authors' ``AffineTransformation``:

1. ``flip``: reverse the width axis (``np.fliplr`` on an H×W×C image);
2. shift by ``(tx, ty)``: ``out[r, c] = in[r + tx, c + ty]`` where samples
   outside the image are taken from its half-sample symmetric extension
   (``numpy.pad(mode="symmetric")``, scipy's ``mode="reflect"``), i.e. what
   Keras 2.2 ``apply_affine_transform(x, tx, ty, fill_mode="reflect")`` does
   for integer shifts: ``tx`` moves along the rows, ``ty`` along the columns;
3. rotate ``k`` times by 90 degrees counter-clockwise in the (H, W) plane, as
   ``np.rot90(img_hwc, k)`` (equivalently ``torch.rot90(x, k, dims=(2, 3))``
   on NCHW tensors).

Every such transformation maps each output pixel to one input pixel, so it is
stored as a table of flat source indices and applied to NCHW batches with a
single :func:`torch.gather`, on whatever device the batch lives.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from numbers import Integral

import numpy as np
import torch

__all__ = ["PRESETS", "GeometricTransformations"]

#: Names accepted by :meth:`GeometricTransformations.from_preset`.
PRESETS = ("geometric72", "flip_rot8", "intuition_flip", "intuition_shift")


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_int_tuple(name: str, values, allowed=None) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(
            f"The '{name}' parameter of GeometricTransformations must be a "
            f"sequence of integers. Got {values!r} instead."
        )
    values = tuple(values)
    if len(values) == 0:
        raise ValueError(
            f"The '{name}' parameter of GeometricTransformations must be a "
            "non-empty sequence. Got an empty sequence instead."
        )
    for v in values:
        if not _is_int(v) or (allowed is not None and int(v) not in allowed):
            expected = "integers" if allowed is None else f"integers in {allowed}"
            raise ValueError(
                f"The '{name}' parameter of GeometricTransformations must "
                f"contain only {expected}. Got {v!r} instead."
            )
    return tuple(int(v) for v in values)


def _reflect(p: np.ndarray, size: int) -> np.ndarray:
    """Half-sample symmetric index extension, valid for ``-size <= p < 2*size``."""
    p = np.where(p < 0, -p - 1, p)
    return np.where(p >= size, 2 * size - 1 - p, p)


def _source_index(h: int, w: int, flip: bool, tx: int, ty: int, k: int) -> np.ndarray:
    """Flat source index of every output pixel of one transformation.

    Walks back from output coordinates through rot90, then the shift, then the
    flip. ``h == w`` is required when ``k`` is odd.
    """
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    # Undo k counter-clockwise quarter turns: np.rot90(m)[i, j] == m[j, W-1-i]
    # (odd k needs a square image) and np.rot90(m, 2)[i, j] == m[H-1-i, W-1-j].
    k = k % 4
    if k == 2:
        r, c = h - 1 - r, w - 1 - c
    else:
        for _ in range(k):
            r, c = c, w - 1 - r
    # Shift with symmetric extension: out[r, c] = in[r + tx, c + ty].
    r = _reflect(r + tx, h)
    c = _reflect(c + ty, w)
    # Horizontal mirror: reverse the width axis.
    if flip:
        c = w - 1 - c
    return (r * w + c).reshape(-1).astype(np.int64)


class GeometricTransformations:
    """A fixed, ordered set of flip / shift / rot90 image transformations.

    The default set is the 72 transformations of Golan & El-Yaniv (2018),
    enumerated in the Cartesian-product order of the authors' ``Transformer``:
    flip in ``(False, True)``, then ``tx`` in ``shifts``, then ``ty`` in
    ``shifts``, then ``k`` in ``rotations``, so that the index of
    ``(flips[a], shifts[b], shifts[c], rotations[d])`` is
    ``36 * a + 12 * b + 4 * c + d`` and index 0 is the identity.

    Parameters
    ----------
    flips : sequence of bool, default=(False, True)
        Whether to mirror the width axis.
    shifts : sequence of int, default=(0, -8, 8)
        Shift amounts in pixels, used for both ``tx`` (rows) and ``ty``
        (columns). Their absolute value may not exceed the image size.
    rotations : sequence of int, default=(0, 1, 2, 3)
        Numbers of counter-clockwise quarter turns, each in ``{0, 1, 2, 3}``.
        Odd values require square images.
    transformations : sequence of (bool, int, int, int), default=None
        An explicit list of ``(flip, tx, ty, k)`` tuples, used instead of the
        Cartesian product. Cannot be combined with ``flips``, ``shifts`` or
        ``rotations``.

    Attributes
    ----------
    n_transforms : int
        Number of transformations.
    params : list of tuple
        The ``(flip, tx, ty, k)`` tuple of each transformation, in index order.

    Notes
    -----
    Applying a transformation is one gather of precomputed source indices,
    cached per image size and device; no copy of the data set is ever made
    for all transformations. The shift reproduces the authors' Keras 2.2
    call for integer shifts exactly, including its orientation: ``tx`` acts on
    the rows (vertical axis) despite the Keras docstring.

    References
    ----------
    .. [1] I. Golan and R. El-Yaniv, "Deep Anomaly Detection Using Geometric
       Transformations", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.nn import GeometricTransformations
    >>> gt = GeometricTransformations()
    >>> gt.n_transforms, gt.params[0], gt.params[45]
    (72, (False, 0, 0, 0), (True, 0, 8, 1))
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> gt8 = GeometricTransformations.from_preset("flip_rot8")
    >>> gt8.apply(x, 1)[0, 0]
    tensor([[ 3.,  7., 11., 15.],
            [ 2.,  6., 10., 14.],
            [ 1.,  5.,  9., 13.],
            [ 0.,  4.,  8., 12.]])
    """

    def __init__(
        self,
        flips: Sequence[bool] | None = None,
        shifts: Sequence[int] | None = None,
        rotations: Sequence[int] | None = None,
        *,
        transformations: Sequence[tuple[bool, int, int, int]] | None = None,
    ) -> None:
        if transformations is not None:
            if flips is not None or shifts is not None or rotations is not None:
                raise ValueError(
                    "The 'transformations' parameter of GeometricTransformations "
                    "cannot be combined with 'flips', 'shifts' or 'rotations'."
                )
            params = self._check_transformations(transformations)
        else:
            flips = (False, True) if flips is None else flips
            shifts = (0, -8, 8) if shifts is None else shifts
            rotations = (0, 1, 2, 3) if rotations is None else rotations
            if isinstance(flips, (str, bytes)) or not isinstance(flips, Iterable):
                raise TypeError(
                    "The 'flips' parameter of GeometricTransformations must be a "
                    f"sequence of bools. Got {flips!r} instead."
                )
            flips = tuple(flips)
            if len(flips) == 0 or not all(
                isinstance(f, (bool, np.bool_)) for f in flips
            ):
                raise ValueError(
                    "The 'flips' parameter of GeometricTransformations must be a "
                    f"non-empty sequence of bools. Got {flips!r} instead."
                )
            shifts = _check_int_tuple("shifts", shifts)
            rotations = _check_int_tuple("rotations", rotations, (0, 1, 2, 3))
            params = [
                (bool(f), tx, ty, k)
                for f, tx, ty, k in itertools.product(flips, shifts, shifts, rotations)
            ]
        self._params = params
        self._cache: dict = {}

    @staticmethod
    def _check_transformations(transformations) -> list[tuple[bool, int, int, int]]:
        msg = (
            "The 'transformations' parameter of GeometricTransformations must "
            "be a non-empty sequence of (flip, tx, ty, k) tuples with flip a "
            "bool, tx and ty integers and k in {0, 1, 2, 3}. Got "
        )
        if isinstance(transformations, (str, bytes)) or not isinstance(
            transformations, Iterable
        ):
            raise TypeError(msg + f"{transformations!r} instead.")
        params = []
        for item in transformations:
            try:
                flip, tx, ty, k = item
            except (TypeError, ValueError):
                raise ValueError(msg + f"the element {item!r} instead.") from None
            if (
                not isinstance(flip, (bool, np.bool_))
                or not (_is_int(tx) and _is_int(ty) and _is_int(k))
                or int(k) not in (0, 1, 2, 3)
            ):
                raise ValueError(msg + f"the element {item!r} instead.")
            params.append((bool(flip), int(tx), int(ty), int(k)))
        if not params:
            raise ValueError(msg + "an empty sequence instead.")
        return params

    # ------------------------------------------------------------------ presets
    @classmethod
    def geometric72(cls, shift: int = 8) -> GeometricTransformations:
        """The 72 transformations of Golan & El-Yaniv (``Transformer``).

        Parameters
        ----------
        shift : int, default=8
            Shift magnitude; the authors use 8 for 32×32 images and 16 for
            64×64 Cats-vs-Dogs.

        Returns
        -------
        GeometricTransformations
            Flips ``(False, True)``, shifts ``(0, -shift, shift)`` on both
            axes, rotations ``(0, 1, 2, 3)``.

        Examples
        --------
        >>> from sklearn_ood.nn import GeometricTransformations
        >>> GeometricTransformations.geometric72(16).params[5]
        (False, 0, -16, 1)
        """
        if not _is_int(shift):
            raise TypeError(
                f"The 'shift' parameter must be an integer. Got {shift!r} instead."
            )
        return cls((False, True), (0, -int(shift), int(shift)), (0, 1, 2, 3))

    @classmethod
    def flip_rot8(cls) -> GeometricTransformations:
        """The 8 transformations flip × rot90 of the authors' ``SimpleTransformer``.

        Returns
        -------
        GeometricTransformations
            Index ``4 * flip + k``, no shifts.

        Examples
        --------
        >>> from sklearn_ood.nn import GeometricTransformations
        >>> GeometricTransformations.flip_rot8().params[5]
        (True, 0, 0, 1)
        """
        return cls((False, True), (0,), (0, 1, 2, 3))

    @classmethod
    def from_preset(
        cls, name: str = "geometric72", *, shift: int | None = None
    ) -> GeometricTransformations:
        """Build one of the transformation sets used in the paper.

        Parameters
        ----------
        name : {"geometric72", "flip_rot8", "intuition_flip", "intuition_shift"}
            ``"geometric72"``: the 72 transformations (default ``shift=8``);
            ``"flip_rot8"``: flip × rot90 (8); ``"intuition_flip"``: identity
            and horizontal flip; ``"intuition_shift"``: identity and a
            translation by ``shift`` pixels (default 7) along the columns,
            the two pairs of the paper's Sec. 6 intuition experiment. The
            paper does not state the direction of that translation: the
            horizontal one is our choice.
        shift : int, default=None
            Shift magnitude for ``"geometric72"`` (8) and ``"intuition_shift"``
            (7); not allowed for the other presets.

        Returns
        -------
        GeometricTransformations

        Examples
        --------
        >>> from sklearn_ood.nn import GeometricTransformations
        >>> GeometricTransformations.from_preset("intuition_shift").params
        [(False, 0, 0, 0), (False, 0, 7, 0)]
        """
        if name not in PRESETS:
            raise ValueError(
                f"The 'name' parameter of GeometricTransformations.from_preset "
                f"must be one of {set(PRESETS)}. Got {name!r} instead."
            )
        if shift is not None and name in ("flip_rot8", "intuition_flip"):
            raise ValueError(f"The preset {name!r} takes no 'shift'.")
        if shift is not None and not _is_int(shift):
            raise TypeError(
                f"The 'shift' parameter must be an integer. Got {shift!r} instead."
            )
        if name == "geometric72":
            return cls.geometric72(8 if shift is None else shift)
        if name == "flip_rot8":
            return cls.flip_rot8()
        if name == "intuition_flip":
            return cls(transformations=[(False, 0, 0, 0), (True, 0, 0, 0)])
        shift = 7 if shift is None else int(shift)
        return cls(transformations=[(False, 0, 0, 0), (False, 0, shift, 0)])

    # -------------------------------------------------------------- properties
    @property
    def n_transforms(self) -> int:
        """Number of transformations."""
        return len(self._params)

    @property
    def params(self) -> list[tuple[bool, int, int, int]]:
        """The ``(flip, tx, ty, k)`` tuple of each transformation (a copy)."""
        return list(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_transforms={self.n_transforms})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = {}  # device tensors are rebuilt on demand
        return state

    # ---------------------------------------------------------------- indices
    def _check_shape(self, h: int, w: int) -> None:
        for flip, tx, ty, k in self._params:
            if abs(tx) > h or abs(ty) > w:
                raise ValueError(
                    f"The transformation (flip={flip}, tx={tx}, ty={ty}, k={k}) "
                    f"shifts by more than the image size {h}x{w}: |tx| must be "
                    f"at most the height and |ty| at most the width."
                )
            if k % 2 == 1 and h != w:
                raise ValueError(
                    "Rotations by 90 or 270 degrees need square images; got "
                    f"images of size {h}x{w}. Use rotations=(0, 2) or square "
                    "images."
                )

    def source_indices(
        self, height: int, width: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Flat source pixel index of every output pixel, per transformation.

        Parameters
        ----------
        height, width : int
            Image size.
        device : torch.device or str, default=None
            Device of the returned tensor (CPU when None).

        Returns
        -------
        torch.Tensor of shape (n_transforms, height * width), dtype int64
            ``out.flatten()[p] == img.flatten()[idx[t, p]]`` for every channel.

        Examples
        --------
        >>> from sklearn_ood.nn import GeometricTransformations
        >>> GeometricTransformations.flip_rot8().source_indices(2, 2)[4]
        tensor([1, 0, 3, 2])
        """
        device = torch.device("cpu") if device is None else torch.device(device)
        key = (int(height), int(width), str(device))
        idx = self._cache.get(key)
        if idx is None:
            self._check_shape(int(height), int(width))
            cpu_key = (key[0], key[1], "cpu")
            idx = self._cache.get(cpu_key)
            if idx is None:
                idx = torch.from_numpy(
                    np.stack([_source_index(key[0], key[1], *p) for p in self._params])
                )
                self._cache[cpu_key] = idx
            idx = idx.to(device)
            self._cache[key] = idx
        return idx

    # ------------------------------------------------------------------ apply
    @staticmethod
    def _check_x(x) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                "x must be a torch.Tensor of shape (N, C, H, W). Got "
                f"{type(x).__name__} instead."
            )
        if x.ndim != 4:
            raise ValueError(
                "x must be a 4-d tensor of shape (N, C, H, W). Got shape "
                f"{tuple(x.shape)} instead."
            )

    def apply(self, x: torch.Tensor, t) -> torch.Tensor:
        """Apply transformation ``t`` to a batch, or ``t[i]`` to sample ``i``.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Image batch, any dtype and device; it is not modified.
        t : int or array-like of int of shape (N,)
            One transformation index for the whole batch, or one per sample
            (a LongTensor, NumPy array or list), each in ``[0, n_transforms)``.

        Returns
        -------
        torch.Tensor of shape (N, C, H, W)
            Transformed batch, same dtype and device as ``x``; differentiable
            with respect to ``x``.

        Examples
        --------
        >>> import torch
        >>> from sklearn_ood.nn import GeometricTransformations
        >>> gt = GeometricTransformations.flip_rot8()
        >>> x = torch.arange(8.0).reshape(2, 1, 2, 2)
        >>> gt.apply(x, torch.tensor([0, 4]))[:, 0]
        tensor([[[0., 1.],
                 [2., 3.]],
        <BLANKLINE>
                [[5., 4.],
                 [7., 6.]]])
        """
        self._check_x(x)
        n, c, h, w = x.shape
        idx = self.source_indices(h, w, x.device)
        flat = x.reshape(n, c, h * w)
        if isinstance(t, torch.Tensor) and t.ndim == 0 and not t.is_floating_point():
            t = t.item()  # a 0-d integer tensor is one index for the batch
        if _is_int(t):
            t = int(t)
            if not 0 <= t < self.n_transforms:
                raise ValueError(
                    f"The transformation index t must be in [0, "
                    f"{self.n_transforms}). Got {t} instead."
                )
            gather_idx = idx[t].expand(n, c, h * w)
            return torch.gather(flat, 2, gather_idx).reshape(n, c, h, w)
        t = self._check_t(t, n, x.device)
        gather_idx = idx[t].unsqueeze(1).expand(n, c, h * w)
        return torch.gather(flat, 2, gather_idx).reshape(n, c, h, w)

    __call__ = apply

    def _check_t(self, t, n: int, device: torch.device) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            t_np = np.asarray(t)
            if t_np.dtype == bool or not (
                np.issubdtype(t_np.dtype, np.integer) or t_np.size == 0
            ):
                raise TypeError(
                    "The transformation index t must be an int or an integer "
                    f"array of shape ({n},). Got dtype {t_np.dtype} instead."
                )
            t = torch.as_tensor(t_np.astype(np.int64))
        elif t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise TypeError(
                "The transformation index t must be an int or an integer "
                f"tensor of shape ({n},). Got dtype {t.dtype} instead."
            )
        if tuple(t.shape) != (n,):
            raise ValueError(
                f"The transformation index t must have shape ({n},), one index "
                f"per sample. Got shape {tuple(t.shape)} instead."
            )
        t = t.to(device=device, dtype=torch.int64)
        if n > 0 and (int(t.min()) < 0 or int(t.max()) >= self.n_transforms):
            raise ValueError(
                f"The transformation indices t must be in [0, {self.n_transforms}). "
                f"Got values in [{int(t.min())}, {int(t.max())}] instead."
            )
        return t

    def apply_all(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every transformation to a (small) batch.

        Parameters
        ----------
        x : torch.Tensor of shape (N, C, H, W)
            Image batch; memory use is ``n_transforms`` times that of ``x``.

        Returns
        -------
        torch.Tensor of shape (n_transforms, N, C, H, W)
            ``out[t] == apply(x, t)``.

        Examples
        --------
        >>> import torch
        >>> from sklearn_ood.nn import GeometricTransformations
        >>> GeometricTransformations().apply_all(torch.zeros(5, 3, 32, 32)).shape
        torch.Size([72, 5, 3, 32, 32])
        """
        self._check_x(x)
        n, c, h, w = x.shape
        idx = self.source_indices(h, w, x.device)
        t = self.n_transforms
        # One gather (faster than index_select on CPU); the result is contiguous.
        src = x.reshape(n, c, h * w).unsqueeze(0).expand(t, n, c, h * w)
        out = torch.gather(src, 3, idx[:, None, None, :].expand(t, n, c, h * w))
        return out.reshape(t, n, c, h, w)
