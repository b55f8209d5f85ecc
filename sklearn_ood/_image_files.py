"""Reading image files (and in-memory PIL images) into uint8 arrays.

Public through :mod:`sklearn_ood.images`: :func:`load_images` returns one array;
:func:`iter_images` yields the same images in batches (for folders larger than
memory, as the ``sklearn-ood`` command line reads them); :func:`list_image_files`
lists the image files of a folder. Every path goes through one function,
``_read_one``, so the array and the streamed routes give the same pixels.

The reading rule is stated in the docstring of :mod:`sklearn_ood.images`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageBatch",
    "is_file_source",
    "iter_images",
    "list_image_files",
    "load_images",
]

#: File name suffixes (case-insensitive) read from a folder.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")

_MODES = ("auto", "L", "RGB")
_ERRORS = ("raise", "skip")
# Pillow modes of one-channel images ("auto" keeps them grey).
_GREY_MODES = frozenset(
    {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
)
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_INSTALL_HINT = 'pip install "sklearn-ood[images]"'


def is_file_source(X) -> bool:
    """Whether ``X`` names image files: a path, or a list/tuple holding paths or
    PIL images (recognised without importing Pillow)."""

    def file_like(item) -> bool:
        return isinstance(item, (str, os.PathLike)) or type(item).__module__.startswith(
            "PIL."
        )

    if isinstance(X, (str, os.PathLike)):
        return True
    return isinstance(X, (list, tuple)) and len(X) > 0 and any(map(file_like, X))


def _import_pil():
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise ImportError(
            "Reading image files needs Pillow, an optional dependency of "
            f"sklearn-ood. Install it with: {_INSTALL_HINT}"
        ) from exc
    return Image, ImageOps


class ImageBatch(NamedTuple):
    """One batch of :func:`iter_images`: the images read and the files that failed.

    Parameters
    ----------
    images : ndarray of shape (n, H, W) or (n, H, W, 3), dtype uint8, or None
        The images of the batch that could be read, in source order; None when
        none could.
    paths : list of str or None
        The path of each image in ``images`` (None for an image given as a PIL
        image or an array).
    failed : list of (str, str)
        ``(path, reason)`` of the files of the batch that could not be read
        (only with ``errors="skip"``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.images import iter_images
    >>> batch = next(iter_images([np.zeros((4, 4), np.uint8)]))
    >>> batch.images.shape, batch.paths, batch.failed
    ((1, 4, 4), [None], [])
    """

    images: np.ndarray | None
    paths: list[str | None]
    failed: list[tuple[str, str]]


# ----------------------------------------------------------------- checks
def _check_option(value, name: str, options: tuple[str, ...], owner: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a str among "
            f"{set(options)}. Got {value!r} instead."
        )
    return value


def _check_bool(value, name: str, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"The '{name}' parameter of {owner} must be a bool. Got {value!r} instead."
        )
    return bool(value)


def _check_size(size, owner: str) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = size
    if isinstance(size, Integral) and not isinstance(size, bool):
        pair = (size, size)
    if (
        not isinstance(pair, Sequence)
        or isinstance(pair, str)
        or len(pair) != 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in pair)
        or min(pair) < 1
    ):
        raise ValueError(
            f"The 'size' parameter of {owner} must be None, a positive int or a "
            f"pair of positive ints (height, width). Got {size!r} instead."
        )
    return int(pair[0]), int(pair[1])


# ------------------------------------------------------------------ sources
def list_image_files(
    folder: str | os.PathLike, *, recursive: bool = False
) -> list[str]:
    """List the image files of a folder, sorted.

    Files whose suffix is in ``sklearn_ood.images.IMAGE_SUFFIXES``
    (case-insensitive) are kept; hidden files and folders (names starting with
    ``"."``) are skipped.

    Parameters
    ----------
    folder : str or path-like
        The folder.
    recursive : bool, default=False
        Also list the files of its subfolders (symbolic links to folders are not
        followed).

    Returns
    -------
    paths : list of str
        ``str(folder / relative path)`` of each image file, sorted; empty when the
        folder holds none.

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not an existing folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sklearn_ood.images import list_image_files
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("b.png", "a.JPG", "notes.txt"):
    ...     _ = (root / name).write_bytes(b"")
    >>> [Path(p).name for p in list_image_files(root)]
    ['a.JPG', 'b.png']
    """
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(
            f"The 'folder' parameter of list_image_files must be an existing folder. "
            f"Got {str(folder)!r} instead."
        )
    recursive = _check_bool(recursive, "recursive", "list_image_files")
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = []
    for path in candidates:
        relative = path.relative_to(root).parts
        if any(part.startswith(".") for part in relative):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(str(path))
    return sorted(found)


def _no_images_message(folder: Path, recursive: bool, how_recursive: str) -> str:
    suffixes = ", ".join(IMAGE_SUFFIXES)
    hint = ""
    if not recursive and any(p.is_dir() for p in folder.iterdir()):
        hint = f" (subfolders were not searched: {how_recursive})"
    return f"No image files ({suffixes}) found in the folder '{folder}'{hint}."


def _source_items(source, recursive: bool, owner: str) -> list[Any]:
    """The list of items (path strings, PIL images, arrays) that ``source`` names."""
    Image, _ = _import_pil()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            items = list_image_files(path, recursive=recursive)
            if not items:
                raise ValueError(
                    _no_images_message(path, recursive, "pass recursive=True")
                )
            return items
        if path.is_file():
            return [os.fspath(source)]
        raise FileNotFoundError(
            f"The 'source' parameter of {owner} names {os.fspath(source)!r}, which "
            "is neither a file nor a folder."
        )
    if isinstance(source, Image.Image):
        return [source]
    if isinstance(source, np.ndarray):
        if source.ndim == 1 and source.dtype.kind in "OU":
            source = source.tolist()
        else:
            raise TypeError(
                f"The 'source' parameter of {owner} must be a path, a folder or a "
                f"list of paths, PIL images or arrays. Got an array of shape "
                f"{source.shape} and dtype {source.dtype}: pass list(X) to load each "
                "of its images."
            )
    elif type(source).__module__.startswith("pandas") and hasattr(source, "tolist"):
        source = source.tolist()  # a Series or an Index of paths
    if not isinstance(source, (list, tuple)):
        raise TypeError(
            f"The 'source' parameter of {owner} must be a path, a folder or a list "
            "of paths, pathlib.Path objects, PIL images or uint8 arrays. Got "
            f"{type(source).__name__} instead."
        )
    if len(source) == 0:
        raise ValueError(f"The 'source' parameter of {owner} is an empty list.")
    items = []
    for i, item in enumerate(source):
        if isinstance(item, (str, os.PathLike)):
            items.append(os.fspath(item))
        elif isinstance(item, (Image.Image, np.ndarray)):
            items.append(item)
        else:
            raise TypeError(
                f"Item {i} of the 'source' parameter of {owner} must be a path, a "
                f"pathlib.Path, a PIL image or a uint8 array. Got "
                f"{type(item).__name__} instead."
            )
    return items


# ------------------------------------------------------------------ reading
def _array_to_pil(array: np.ndarray, Image):
    if array.dtype != np.uint8:
        raise TypeError(
            "Images given as arrays must have dtype uint8 (pixel values 0..255). "
            f"Got dtype {array.dtype}: scale and convert them first, e.g. "
            "(x * 255).round().astype(np.uint8) for values in [0, 1]."
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ValueError(
            "Images given as arrays must have shape (H, W), (H, W, 1), (H, W, 3) "
            f"or (H, W, 4). Got an array of shape {array.shape}."
        )
    if 0 in array.shape:
        raise ValueError(f"An image given as an array is empty: shape {array.shape}.")
    return Image.fromarray(np.ascontiguousarray(array))  # copies the pixels


def _open_file(path: str, Image, ImageOps):
    with Image.open(path) as img:
        img.load()
        return ImageOps.exif_transpose(img)  # a copy that outlives the file


def _to_mode(img, target: str, Image):
    """``img`` as a Pillow image of mode ``target`` ("L" or "RGB")."""
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"integer image (mode {img.mode!r}) with values outside 0..65535"
            )
        # 0..65535 -> 0..255 as round(v / 257), in integers (exact).
        img = Image.fromarray(((values + 128) // 257).astype(np.uint8), "L")
    elif img.mode == "F":
        raise ValueError(
            "floating-point image (mode 'F'): convert it to 8 bits per channel first"
        )
    return img if img.mode == target else img.convert(target)


def _fit_to(img, size: tuple[int, int], Image) -> np.ndarray:
    """Scale ``img`` to cover ``size`` (aspect kept), then crop its centre."""
    h, w = size
    width, height = img.size
    factor = max(h / height, w / width)
    new_h = max(h, round(height * factor))
    new_w = max(w, round(width * factor))
    if (new_h, new_w) != (height, width):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top = round((new_h - h) / 2.0)
    left = round((new_w - w) / 2.0)
    return np.asarray(img)[top : top + h, left : left + w]


def _read_one(item, target: str, size, Image, ImageOps) -> np.ndarray:
    if isinstance(item, str):
        img = _open_file(item, Image, ImageOps)
    elif isinstance(item, np.ndarray):
        img = _array_to_pil(item, Image)
    else:
        img = ImageOps.exif_transpose(item)  # a copy: the caller's image is kept
    img = _to_mode(img, target, Image)
    if size is None:
        return np.array(img, dtype=np.uint8)
    return np.array(_fit_to(img, size, Image), dtype=np.uint8)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _unreadable(path: str, exc: BaseException) -> OSError:
    cls = FileNotFoundError if isinstance(exc, FileNotFoundError) else OSError
    return cls(
        f"Cannot read the image file '{path}': {_reason(exc)}. Pass errors='skip' to "
        "skip unreadable files."
    )


def _guard(item, errors: str, failed: list, action):
    """``action()`` for a file item; on failure raise or record ``(path, reason)``."""
    if not isinstance(item, str):
        return action()  # in-memory input: a wrong one is the caller's error
    try:
        return action()
    except MemoryError:
        raise
    except Exception as exc:  # any decoder error of any plugin means "unreadable"
        if errors == "raise":
            raise _unreadable(item, exc) from exc
        failed.append((item, _reason(exc)))
        return None


def _resolve_mode(items, mode: str, errors: str, Image) -> tuple[str, dict]:
    """``("L" or "RGB", {path: reason})``; "auto" reads the file headers only.

    The files that fail here are returned so that they are not opened again.
    """
    if mode != "auto":
        return mode, {}

    def item_mode(item):
        if isinstance(item, str):
            with Image.open(item) as img:
                return img.mode
        if isinstance(item, np.ndarray):
            return "L" if item.ndim == 2 or item.shape[-1] == 1 else "RGB"
        return item.mode

    failed: list[tuple[str, str]] = []
    target = "L"
    for item in items:
        found = _guard(item, errors, failed, lambda item=item: item_mode(item))
        if found is not None and found not in _GREY_MODES:
            target = "RGB"
            break
    return target, dict(failed)


def _read_items(items, target, size, errors, known_failures, failed, Image, ImageOps):
    """Yield ``(item, array)`` per item read; failures go to ``failed`` in order."""
    for item in items:
        if isinstance(item, str) and item in known_failures:
            failed.append((item, known_failures[item]))
            continue
        array = _guard(
            item,
            errors,
            failed,
            lambda item=item: _read_one(item, target, size, Image, ImageOps),
        )
        if array is not None:
            yield item, array


def _label(item) -> str | None:
    return item if isinstance(item, str) else None


def _size_mismatch(found: str) -> ValueError:
    return ValueError(
        f"The images have different sizes (height x width): {found}. Pass "
        "size=(height, width), or size=int for a square, to scale and crop them "
        "to one size."
    )


def _example(label) -> str:
    return f", e.g. '{label}'" if label is not None else ""


def _named(label) -> str:
    return f", '{label}'" if label is not None else ""


def _nothing_read(n_items: int, failed: list) -> ValueError:
    shown = "; ".join(f"{p}: {r}" for p, r in failed[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    return ValueError(
        f"None of the {n_items} image files could be read: {shown}{more}."
    )


# ------------------------------------------------------------------ public
def load_images(
    source,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "auto",
    recursive: bool = False,
    errors: str = "raise",
    return_paths: bool = False,
):
    """Load image files, folders or PIL images into one uint8 array.

    Parameters
    ----------
    source : str, path-like, PIL image or list
        A path to an image file; a folder (its files with a suffix in
        ``sklearn_ood.images.IMAGE_SUFFIXES``, sorted, hidden files skipped);
        or a list (or 1-D array, or pandas Series) of paths,
        :class:`pathlib.Path` objects, :class:`PIL.Image.Image` objects and
        uint8 arrays of shape ``(H, W)``,
        ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``, loaded in that order.
    size : int, (int, int) or None, default=None
        ``(height, width)`` of the output (an int gives a square): each image is
        scaled with its aspect ratio kept so that it just covers that size
        (Pillow's bicubic filter), then its central window of that size is kept.
        None: no resizing; the images must then all have the same size.
    mode : {"auto", "L", "RGB"}, default="auto"
        ``"L"``: grey, ``"RGB"``: colour. ``"auto"``: grey when every image is
        grey (Pillow modes ``1``, ``L``, ``LA``, ``I;16``, ...), else RGB (grey
        images are then replicated to three equal channels).
    recursive : bool, default=False
        For a folder, also read its subfolders.
    errors : {"raise", "skip"}, default="raise"
        What a file that cannot be read (missing, corrupt, truncated, not an
        image) does: raise an :class:`OSError` naming it, or be skipped (listed
        in ``failed``). A wrong in-memory image (an array that is not uint8) is
        always an error.
    return_paths : bool, default=False
        Also return the paths of the images and the files that failed.

    Returns
    -------
    images : ndarray of shape (n_images, height, width, 3) or \
(n_images, height, width), dtype uint8
        The images in source order (grey images have no channel axis).
    paths : list of str or None
        Only with ``return_paths=True``: the path of each image (None for an
        image given as a PIL image or an array).
    failed : list of (str, str)
        Only with ``return_paths=True``: ``(path, reason)`` of each file that
        could not be read (empty with ``errors="raise"``).

    Raises
    ------
    ImportError
        If Pillow is not installed (``pip install "sklearn-ood[images]"``).
    OSError
        If a file cannot be read and ``errors="raise"`` (FileNotFoundError for a
        missing one).
    ValueError
        If no image is found or none could be read, if the images differ in size
        and ``size`` is None, or for a bad parameter.

    See Also
    --------
    iter_images : The same images, in batches.
    sklearn_ood.TorchFeatureExtractor : Takes these arrays (and lists of paths).

    Notes
    -----
    Files are rotated by their EXIF orientation and converted with Pillow
    (alpha dropped, 16-bit grey mapped to 8 bits); see
    :mod:`sklearn_ood.images` for the exact rule. The ``sklearn-ood`` command
    line reads files with the same code, so a model scores the same pixels in
    Python and on the command line.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn_ood.images import load_images
    >>> root = Path(tempfile.mkdtemp())
    >>> Image.new("L", (40, 30), color=200).save(root / "grey.png")
    >>> Image.new("RGB", (28, 28), color=(255, 0, 0)).save(root / "red.png")
    >>> X = load_images(root, size=32)
    >>> X.shape, X.dtype
    ((2, 32, 32, 3), dtype('uint8'))
    >>> X[0, 0, 0].tolist(), X[1, 0, 0].tolist()
    ([200, 200, 200], [255, 0, 0])
    """
    owner = "load_images"
    size = _check_size(size, owner)
    mode = _check_option(mode, "mode", _MODES, owner)
    errors = _check_option(errors, "errors", _ERRORS, owner)
    return_paths = _check_bool(return_paths, "return_paths", owner)
    recursive = _check_bool(recursive, "recursive", owner)
    Image, ImageOps = _import_pil()
    items = _source_items(source, recursive, owner)
    target, known_failures = _resolve_mode(items, mode, errors, Image)
    failed: list[tuple[str, str]] = []
    read = list(
        _read_items(
            items, target, size, errors, known_failures, failed, Image, ImageOps
        )
    )
    if not read:
        raise _nothing_read(len(items), failed)
    if size is None:
        sizes = Counter(array.shape[:2] for _, array in read)
        if len(sizes) > 1:
            examples: dict = {}
            for item, array in read:
                examples.setdefault(array.shape[:2], _label(item))
            raise _size_mismatch(
                ", ".join(
                    f"{h}x{w} ({n} image{'s' if n > 1 else ''}"
                    f"{_example(examples[h, w])})"
                    for (h, w), n in sizes.most_common()
                )
            )
    images = np.stack([array for _, array in read])
    if return_paths:
        return images, [_label(item) for item, _ in read], failed
    return images


def iter_images(
    source,
    *,
    batch_size: int = 256,
    size: int | tuple[int, int] | None = None,
    mode: str = "auto",
    recursive: bool = False,
    errors: str = "raise",
) -> Iterator[ImageBatch]:
    """Read images in batches: :func:`load_images` for sources larger than memory.

    The arguments are checked and the folder is listed when this function is
    called; the files are read as the batches are consumed. Concatenated, the
    batches' images equal ``load_images(source, ...)``.

    Parameters
    ----------
    source : str, path-like, PIL image or list
        As for :func:`load_images`.
    batch_size : int, default=256
        Source items (files, PIL images, arrays) per batch; a batch holds fewer
        images when some of its files cannot be read.
    size : int, (int, int) or None, default=None
        As for :func:`load_images`. With None, an image whose size differs from
        the first one's raises a ValueError when its batch is read.
    mode : {"auto", "L", "RGB"}, default="auto"
        As for :func:`load_images`; ``"auto"`` opens every file's header (no
        decoding) before the first batch.
    recursive : bool, default=False
        For a folder, also read its subfolders.
    errors : {"raise", "skip"}, default="raise"
        As for :func:`load_images`.

    Returns
    -------
    batches : iterator of ImageBatch
        ``(images, paths, failed)`` per batch of ``batch_size`` source items;
        ``images`` is None when none of the batch's files could be read.

    Raises
    ------
    ImportError
        If Pillow is not installed (``pip install "sklearn-ood[images]"``).
    ValueError
        If no image file is found in a folder, or for a bad parameter.

    See Also
    --------
    load_images : All images in one array.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.images import iter_images
    >>> arrays = [np.full((8, 8), i, np.uint8) for i in range(5)]
    >>> [batch.images.shape for batch in iter_images(arrays, batch_size=2)]
    [(2, 8, 8), (2, 8, 8), (1, 8, 8)]
    """
    owner = "iter_images"
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, Integral)
        or batch_size < 1
    ):
        raise ValueError(
            "The 'batch_size' parameter of iter_images must be a positive int. "
            f"Got {batch_size!r} instead."
        )
    size = _check_size(size, owner)
    mode = _check_option(mode, "mode", _MODES, owner)
    errors = _check_option(errors, "errors", _ERRORS, owner)
    recursive = _check_bool(recursive, "recursive", owner)
    Image, ImageOps = _import_pil()
    items = _source_items(source, recursive, owner)
    return _batches(items, int(batch_size), size, mode, errors, Image, ImageOps)


def _batches(items, batch_size, size, mode, errors, Image, ImageOps):
    target, known_failures = _resolve_mode(items, mode, errors, Image)
    first: tuple | None = None  # (shape, label) of the first image read
    for start in range(0, len(items), batch_size):
        failed: list[tuple[str, str]] = []
        read = list(
            _read_items(
                items[start : start + batch_size],
                target,
                size,
                errors,
                known_failures,
                failed,
                Image,
                ImageOps,
            )
        )
        for item, array in read:
            if first is None:
                first = (array.shape[:2], _label(item))
            elif array.shape[:2] != first[0]:
                (h0, w0), label0 = first
                h, w = array.shape[:2]
                raise _size_mismatch(
                    f"{h0}x{w0} (the first image{_named(label0)}) and {h}x{w} "
                    f"(a later one{_named(_label(item))})"
                )
        images = np.stack([array for _, array in read]) if read else None
        yield ImageBatch(images, [_label(item) for item, _ in read], failed)
