"""End-to-end tests of ``sklearn-ood fit`` / ``sklearn-ood score`` on real images.

The images are Fashion-MNIST test images written as PNG (grey) and JPEG (RGB, of
another size) with Pillow. The command line and Python read files with the same
function (:func:`sklearn_ood.images.load_images`), whose pixels
``tests/test_images.py`` checks against Pillow; here every CSV column is compared
with the saved model's own methods called in Python on those arrays. The model
runs on the same images in the same batches with the same deterministic CPU
kernels, so the numbers are equal, not close.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline

import sklearn_ood
from sklearn_ood import KNNDetector, MahalanobisDetector, TorchFeatureExtractor
from sklearn_ood.base import OutlierContractMixin
from sklearn_ood.cli import main
from sklearn_ood.datasets import load_fashion_mnist
from sklearn_ood.images import load_images
from sklearn_ood.model_selection import FixedThresholdDetector, TunedThresholdDetectorCV

IMAGE_SIZE = 32
# EfficientNet-Lite0's pretrained_cfg has crop_pct 0.875: files are read at
# floor(32 / 0.875) = 36 pixels and the extractor crops the central 32 x 32.
LOAD_SIZE = (36, 36)
N_PNG, N_JPEG = 24, 6
COLUMNS = ["path", "score", "offset", "decision", "p_value", "prediction"]


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [*COLUMNS, "is_outlier"]

    def column(name, kind):
        return np.array([kind(r[name]) if r[name] != "" else np.nan for r in rows])

    out = {"path": [r["path"] for r in rows]}
    for name in ("score", "offset", "decision", "p_value"):
        out[name] = column(name, float)
    out["prediction"] = column("prediction", int).astype(int)
    out["is_outlier"] = column("is_outlier", int).astype(int)
    return out


def _python_columns(model, images):
    """What Python gives for the CSV columns, from the model's public methods."""
    final = model
    while isinstance(final, Pipeline):
        final = final[-1]
    if hasattr(model, "p_values"):
        p_values = model.p_values(images)
    elif isinstance(model, Pipeline) and hasattr(model[-1], "p_values"):
        p_values = model[-1].p_values(model[:-1].transform(images))
    else:
        p_values = np.full(len(images), np.nan)
    return {
        "score": model.score_samples(images),
        "offset": np.full(len(images), final.offset_),
        "decision": model.decision_function(images),
        "p_value": p_values,
        "prediction": model.predict(images),
    }


def _assert_csv_equals_python(table, model, images):
    expected = _python_columns(model, images)
    for name, values in expected.items():
        np.testing.assert_array_equal(table[name], values, err_msg=name)
    np.testing.assert_array_equal(table["is_outlier"], table["prediction"] == -1)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """24 grey PNGs, 6 RGB JPEGs of another size, one corrupt PNG, one text file."""
    root = tmp_path_factory.mktemp("images")
    X, _ = load_fashion_mnist(subset="test")
    for i in range(N_PNG):
        Image.fromarray(X[i]).save(root / f"img{i:02d}.png")
    rng = np.random.RandomState(0)
    for i in range(N_JPEG):
        grey = np.asarray(Image.fromarray(X[100 + i]).resize((40, 30)))
        tint = rng.uniform(0.5, 1.0, size=3)
        rgb = (grey[..., None] * tint).astype(np.uint8)
        Image.fromarray(rgb).save(root / f"photo{i}.JPG", quality=95)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    (root / "notes.txt").write_text("not an image, ignored")
    return root


@pytest.fixture(scope="module")
def readable(image_dir):
    """The readable image files, in the folder's sorted order, and the corrupt one."""
    corrupt = str(image_dir / "corrupt.png")
    paths = sorted(str(p) for p in image_dir.iterdir() if p.suffix in (".png", ".JPG"))
    return [p for p in paths if p != corrupt], corrupt


@pytest.fixture(scope="module")
def fitted_model(image_dir, tmp_path_factory):
    """A model saved by ``sklearn-ood fit`` (kNN: fast on 1280-d features)."""
    model = tmp_path_factory.mktemp("model") / "model.joblib"
    args = ["fit", str(image_dir), str(model), "--image-size", str(IMAGE_SIZE)]
    args += ["--detector", "knn", "--n-neighbors", "3", "--contamination", "0.1"]
    assert main([*args, "--device", "cpu", "--batch-size", "16"]) == 0
    return model


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"sklearn-ood {sklearn_ood.__version__}\n"


def test_score_csv_equals_python(image_dir, readable, fitted_model, tmp_path):
    paths, _ = readable
    out = tmp_path / "scores.csv"
    assert main(["score", str(fitted_model), str(image_dir), "-o", str(out)]) == 0
    table = _read_csv(out)
    # Every readable image, in sorted order; the corrupt file is not in the CSV.
    assert table["path"] == paths and len(paths) == N_PNG + N_JPEG
    model = joblib.load(fitted_model)
    images = load_images(paths, size=LOAD_SIZE, mode="RGB")
    _assert_csv_equals_python(table, model, images)


def test_fit_sets_the_target_share(readable, fitted_model, tmp_path):
    """--contamination is the detector's at fit time: the saved offset_ is the
    one of a KNNDetector(contamination=0.1) fitted in Python on the same
    features (same extractor batches: equal), and the CSV flags exactly the
    images whose p-value is at most 0.1 (the conformal rule of base.py)."""
    paths, _ = readable
    model = joblib.load(fitted_model)
    detector = model.named_steps["detector"]
    assert isinstance(detector, KNNDetector)
    assert (detector.n_neighbors, detector.contamination) == (3, 0.1)
    images = load_images(paths, size=LOAD_SIZE, mode="RGB")
    extractor = TorchFeatureExtractor(
        "efficientnet_lite0", image_size=IMAGE_SIZE, batch_size=16, device="cpu"
    ).fit(images)
    reference = KNNDetector(n_neighbors=3, contamination=0.1)
    reference.fit(extractor.transform(images))
    assert detector.offset_ == reference.offset_
    out = tmp_path / "scores.csv"
    image_dir = Path(paths[0]).parent
    assert main(["score", str(fitted_model), str(image_dir), "-o", str(out)]) == 0
    table = _read_csv(out)
    np.testing.assert_array_equal(table["prediction"] == -1, table["p_value"] <= 0.1)


# ------------------------------------------------- models saved from Python
class TinyNet(torch.nn.Module):
    """A small CNN, so that the Python-saved models are quick to fit and score."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)


class ConformalStandIn(OutlierContractMixin, BaseEstimator):
    """Split conformal around a Pipeline, with the public API of
    ``sklearn_ood.conformal.ConformalDetector`` (written in another branch):
    ``estimator_``, ``calibration_scores_``, ``offset_`` and ``p_values``."""

    def __init__(self, estimator, *, contamination=0.2, random_state=0):
        self.estimator = estimator
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X, y=None):
        order = np.random.RandomState(self.random_state).permutation(len(X))
        half = len(X) // 2
        self.estimator_ = clone(self.estimator).fit(X[order[:half]])
        self.calibration_scores_ = self.estimator_.score_samples(X[order[half:]])
        k = math.floor(self.contamination * (len(X) - half + 1))
        self.offset_ = float(np.sort(self.calibration_scores_)[max(k, 1) - 1])
        return self

    def score_samples(self, X):
        return self.estimator_.score_samples(X)


# floor(16 / 0.8) = 20: files are read at 20 x 20 and the extractor crops 16.
TINY_LOAD = (20, 20)


def _tiny_pipeline(detector):
    extractor = TorchFeatureExtractor(
        TinyNet, image_size=16, crop_pct=0.8, device="cpu", random_state=0
    )
    return Pipeline([("features", extractor), ("detector", detector)])


WRAPPED = {
    "pipeline_mahalanobis": lambda: _tiny_pipeline(MahalanobisDetector()),
    "tuned_threshold": lambda: TunedThresholdDetectorCV(
        _tiny_pipeline(KNNDetector(n_neighbors=2)), cv=3, random_state=0
    ),
    "fixed_threshold": lambda: FixedThresholdDetector(
        _tiny_pipeline(KNNDetector(n_neighbors=2)), target_tpr=0.8
    ),
    "conformal": lambda: ConformalStandIn(_tiny_pipeline(KNNDetector())),
}


@pytest.mark.parametrize("kind", sorted(WRAPPED))
def test_score_saved_models_equals_python(
    kind, image_dir, readable, tmp_path, monkeypatch
):
    paths, _ = readable
    images = load_images(paths, size=TINY_LOAD, mode="RGB")
    model = WRAPPED[kind]().fit(images)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    # Count forward passes: one per batch of files, however many columns.
    n_transform = []
    original = TorchFeatureExtractor.transform

    def counting(self, X):
        n_transform.append(len(X))
        return original(self, X)

    monkeypatch.setattr(TorchFeatureExtractor, "transform", counting)
    out = tmp_path / "scores.csv"
    assert main(["score", str(path), str(image_dir), "-o", str(out)]) == 0
    assert n_transform == [len(paths)]  # 30 files: one batch, one pass
    monkeypatch.undo()
    table = _read_csv(out)
    assert table["path"] == paths
    _assert_csv_equals_python(table, joblib.load(path), images)
    if kind == "conformal":  # p-values where the model has them
        assert np.all((table["p_value"] > 0) & (table["p_value"] <= 1))


def test_extractor_without_image_size_reads_files_as_they_are(
    image_dir, readable, tmp_path, capsys
):
    """A network fitted on images of one size, with no resizing (image_size is
    "auto", i.e. None for a model without a pretrained_cfg): the files are read
    at their own size, which must then be one."""
    paths, _ = readable
    pngs = [p for p in paths if p.endswith(".png")]  # 28 x 28 each
    images = load_images(pngs, mode="RGB")
    extractor = TorchFeatureExtractor(TinyNet, device="cpu", random_state=0)
    model = Pipeline([("f", extractor), ("d", KNNDetector())]).fit(images)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    listing = tmp_path / "pngs.txt"
    listing.write_text("\n".join(pngs))
    out = tmp_path / "scores.csv"
    assert main(["score", str(path), str(listing), "-o", str(out)]) == 0
    table = _read_csv(out)
    assert table["path"] == pngs
    _assert_csv_equals_python(table, joblib.load(path), images)
    capsys.readouterr()
    assert main(["score", str(path), str(image_dir), "-o", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "image_size=None" in line and "28x28" in line and "30x40" in line


def test_single_image_file(readable, fitted_model, tmp_path, capsys):
    paths, _ = readable
    out = tmp_path / "one.csv"
    assert main(["score", str(fitted_model), paths[-1], "-o", str(out)]) == 0
    table = _read_csv(out)
    assert table["path"] == [paths[-1]]
    model = joblib.load(fitted_model)
    image = load_images(paths[-1], size=LOAD_SIZE, mode="RGB")
    _assert_csv_equals_python(table, model, image)
    capsys.readouterr()
    assert main(["fit", paths[0], str(tmp_path / "m.joblib")]) == 2
    assert "single image; fit needs several" in _one_line(capsys.readouterr().err)


# ------------------------------------------------------------ output files
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_existing_csv_replaced_only_when_scoring_succeeds(
    image_dir, readable, fitted_model, tmp_path, monkeypatch, capsys
):
    paths, _ = readable
    out = tmp_path / "scores.csv"
    out.write_text("old results\n")
    out.chmod(0o640)
    seen_while_reading = []
    original = TorchFeatureExtractor.transform

    def watching(self, X):  # called once per batch of images read
        seen_while_reading.append(out.read_text())
        return original(self, X)

    monkeypatch.setattr(TorchFeatureExtractor, "transform", watching)
    args = ["score", str(fitted_model), str(image_dir), "-o", str(out)]
    args += ["--batch-size", "2"]  # 31 files read in 2 batches of 8 x 2 = 16
    assert main(args) == 0
    assert seen_while_reading == ["old results\n"] * 2
    assert _read_csv(out)["path"] == paths
    assert out.stat().st_mode & 0o777 == 0o640
    assert _leftovers(tmp_path) == []

    # A failure while scoring leaves the old file as it was, and no temporary.
    out.write_text("old results\n")

    def broken(self, X):
        raise RuntimeError("the network broke")

    monkeypatch.setattr(TorchFeatureExtractor, "transform", broken)
    with pytest.raises(RuntimeError, match="the network broke"):
        main(args)
    assert out.read_text() == "old results\n" and _leftovers(tmp_path) == []

    # So does an error: no readable image.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["score", str(fitted_model), str(bad), "-o", str(out)]) == 2
    assert out.read_text() == "old results\n" and _leftovers(tmp_path) == []


def _unwritable_model_paths(tmp_path):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    cases = [
        (folder, "is a folder"),
        (tmp_path / "missing" / "m.joblib", "does not exist"),
    ]
    if Path("/proc/self").is_dir():  # Linux: no file can be created in /proc
        cases.append((Path("/proc/sklearn-ood-model.joblib"), "cannot write"))
    return cases


def test_fit_unwritable_model_path_fails_before_extraction(
    image_dir, tmp_path, monkeypatch, capsys
):
    def never(self, X, *args):
        raise AssertionError("features extracted before the output was checked")

    monkeypatch.setattr(TorchFeatureExtractor, "fit", never)
    monkeypatch.setattr(TorchFeatureExtractor, "transform", never)
    for target, message in _unwritable_model_paths(tmp_path):
        assert main(["fit", str(image_dir), str(target)]) == 2
        line = _one_line(capsys.readouterr().err)
        assert line.startswith("sklearn-ood fit: error:") and message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder"]


@pytest.mark.parametrize("command", ["fit", "score"])
def test_bad_device_is_a_usage_error(command, image_dir, tmp_path, capsys):
    args = [command, str(image_dir), str(tmp_path / "m.joblib")]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--device", "bogus"])
    assert exc.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"sklearn-ood {command}: error: argument --device")
    assert "'bogus'" in line


def test_without_pillow_names_the_extra(
    image_dir, fitted_model, tmp_path, monkeypatch, capsys
):
    for name in ("PIL", "PIL.Image", "PIL.ImageOps"):
        monkeypatch.setitem(sys.modules, name, None)
    target = tmp_path / "m.joblib"
    assert main(["fit", str(image_dir), str(target), "--image-size", "32"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert 'pip install "sklearn-ood[images]"' in line
    out = tmp_path / "s.csv"
    assert main(["score", str(fitted_model), str(image_dir), "-o", str(out)]) == 2
    assert 'pip install "sklearn-ood[images]"' in _one_line(capsys.readouterr().err)
    assert not target.exists() and not out.exists() and _leftovers(tmp_path) == []


# ------------------------------------------------------ inputs and messages
def test_unreadable_files_are_skipped_and_listed(
    image_dir, readable, fitted_model, tmp_path, capsys
):
    _, corrupt = readable
    out = tmp_path / "scores.csv"
    assert main(["score", str(fitted_model), str(image_dir), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipping '{corrupt}'" in err
    summary = err.split("1 file could not be read and was skipped:")[1]
    assert corrupt in summary
    assert "Scored 30 images" in err


def test_progress_bar_and_summary_without_tqdm(
    image_dir, fitted_model, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "scores.csv"
    args = ["score", str(fitted_model), str(image_dir), "-o", str(out), "-v"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "scoring: 100%" in err and "31/31" in err  # 30 images + 1 corrupt
    # Without tqdm, --verbose prints a one-line summary instead of a bar.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "scoring: 31 images in" in err and "100%" not in err


def test_file_list_order_relative_paths_and_missing(
    image_dir, fitted_model, tmp_path, capsys
):
    names = ["img03.png", "photo1.JPG", "missing.png", "img00.png"]
    listing = image_dir / "list.txt"
    listing.write_text("# scored in this order\n\n" + "\n".join(names) + "\n")
    out = tmp_path / "scores.csv"
    try:
        assert main(["score", str(fitted_model), str(listing), "-o", str(out)]) == 0
    finally:
        listing.unlink()
    table = _read_csv(out)
    expected = [str(image_dir / n) for n in names if n != "missing.png"]
    assert table["path"] == expected
    model = joblib.load(fitted_model)
    images = load_images(expected, size=LOAD_SIZE, mode="RGB")
    _assert_csv_equals_python(table, model, images)
    err = capsys.readouterr().err
    assert str(image_dir / "missing.png") in err.split("was skipped:")[1]


def test_csv_to_stdout(image_dir, fitted_model, capsys):
    path = str(image_dir / "img05.png")
    assert main(["score", str(fitted_model), path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join([*COLUMNS, "is_outlier"])
    assert len(lines) == 2 and lines[1].split(",")[0] == path
    model = joblib.load(fitted_model)
    score = model.score_samples(load_images(path, size=LOAD_SIZE, mode="RGB"))
    assert float(lines[1].split(",")[1]) == score[0]


@pytest.mark.parametrize("command", ["fit", "score"])
def test_empty_folder_is_an_error(command, fitted_model, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    args = (
        ["fit", str(empty), str(tmp_path / "m.joblib")]
        if command == "fit"
        else ["score", str(fitted_model), str(empty), "-o", str(tmp_path / "s.csv")]
    )
    assert main(args) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"sklearn-ood {command}: error: no image files (")
    assert not (tmp_path / "m.joblib").exists()
    assert not (tmp_path / "s.csv").exists()


def test_subfolders_need_recursive(image_dir, fitted_model, tmp_path, capsys):
    root = tmp_path / "nested"
    (root / "a" / "b").mkdir(parents=True)
    for name in ("img01.png", "img02.png"):
        (root / "a" / "b" / name).write_bytes((image_dir / name).read_bytes())
    out = tmp_path / "scores.csv"
    assert main(["score", str(fitted_model), str(root), "-o", str(out)]) == 2
    assert "add --recursive" in capsys.readouterr().err
    assert main(["score", str(fitted_model), str(root), "-r", "-o", str(out)]) == 0
    table = _read_csv(out)
    assert [Path(p).name for p in table["path"]] == ["img01.png", "img02.png"]


def test_only_unreadable_files_is_an_error(fitted_model, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"garbage")
    (folder / "b.jpg").write_bytes(b"")
    assert main(["score", str(fitted_model), str(folder)]) == 2
    err = capsys.readouterr().err
    assert "none of the 2 image files could be read" in err
    assert "2 files could not be read and were skipped" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--contamination", "0.7"], "must be 'auto' or a float in (0, 0.5]"),
        (["--image-size", "0"], "must be a positive integer"),
        (["--detector", "lof"], "invalid choice: 'lof'"),
    ],
)
def test_bad_arguments(args, message, image_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(image_dir), str(tmp_path / "m.joblib"), *args])
    assert exc.value.code == 2
    assert message in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-test", "0"], "must be a positive integer; got '0'"),
        (["--n-fit", "-5"], "must be a positive integer; got '-5'"),
        (["--random-state", "-1"], "must be an integer in [0, 2**32 - 1]"),
        (["--normal-class", "10"], "invalid choice"),
    ],
)
def test_demo_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *args])
    assert exc.value.code == 2
    assert message in _one_line(capsys.readouterr().err)


def test_score_rejects_a_model_without_an_extractor(image_dir, tmp_path, capsys):
    path = tmp_path / "det.joblib"
    joblib.dump(MahalanobisDetector(), path)
    assert main(["score", str(path), str(image_dir)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "through a TorchFeatureExtractor" in line
    assert "got MahalanobisDetector" in line


def test_python_m_exit_status(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    root = str(Path(__file__).resolve().parents[1])  # this checkout's package
    env = {**os.environ, "PYTHONPATH": root}
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_ood", "fit", str(empty), "m.joblib"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 2
    assert "no image files (" in result.stderr


@pytest.mark.parametrize(
    "n_flagged, n, verdict", [(2, 200, "within"), (1, 1000, "NOT within")]
)
def test_demo_flagged_share_line(n_flagged, n, verdict):
    """The demo's share against its target, with the binomial standard error:
    scipy's Binomial(n, 0.025) standard deviation divided by n."""
    from scipy.stats import binom

    from sklearn_ood._demo import flagged_share_line

    line = flagged_share_line(n_flagged / n, n, 0.025)
    se = binom(n, 0.025).std() / n
    z = (n_flagged / n - 0.025) / se
    assert f"{100 * n_flagged / n:.1f}% of {n} held-out normal images" in line
    assert f"standard error {100 * se:.2f} points" in line
    assert f"{verdict} two standard errors of the target: z = {z:+.1f}" in line
    assert (abs(z) <= 2) == (verdict == "within")
