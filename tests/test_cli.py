"""End-to-end tests of ``sklearn-ood fit`` / ``sklearn-ood score`` on real images.

The images are Fashion-MNIST test images written as PNG (grey) and JPEG (RGB, of
other sizes) with Pillow. Scores written by the command line are compared with an
independent computation in Python: the same files read with Pillow, a pipeline
fitted in Python, and the saved model loaded with joblib.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image, ImageOps

from sklearn_ood import KNNDetector, MahalanobisDetector, TorchFeatureExtractor
from sklearn_ood.cli import main
from sklearn_ood.datasets import load_fashion_mnist

IMAGE_SIZE = 32
# EfficientNet-Lite0's pretrained_cfg has crop_pct 0.875: files are read at
# floor(32 / 0.875) = 36 pixels and the extractor crops the central 32 x 32.
LOAD_SIZE = math.floor(IMAGE_SIZE / 0.875)
N_PNG, N_JPEG = 24, 6


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        [r["path"] for r in rows],
        np.array([float(r["score"]) for r in rows]),
        np.array([int(r["is_outlier"]) for r in rows]),
    )


def _load_like_cli(paths):
    """Pillow reading written independently of the command line's code."""
    images = []
    for p in paths:
        with Image.open(p) as img:
            img = img.convert("RGB")
        img = ImageOps.fit(img, (LOAD_SIZE, LOAD_SIZE), Image.Resampling.BICUBIC)
        images.append(np.asarray(img))
    return np.stack(images)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """24 grey PNGs, 6 RGB JPEGs of other sizes, one corrupt PNG, one text file."""
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
    return sorted(
        str(p) for p in image_dir.iterdir() if p.suffix in (".png", ".JPG")
    ), str(image_dir / "corrupt.png")


@pytest.fixture(scope="module")
def fitted_model(image_dir, tmp_path_factory):
    model = tmp_path_factory.mktemp("model") / "model.joblib"
    args = ["fit", str(image_dir), str(model), "--image-size", str(IMAGE_SIZE)]
    status = main([*args, "--device", "cpu", "--batch-size", "16"])
    assert status == 0
    return model


def test_fit_and_score_match_python(image_dir, readable, fitted_model, tmp_path):
    paths, corrupt = readable
    paths = [p for p in paths if p != corrupt]
    out = tmp_path / "scores.csv"
    assert main(["score", str(fitted_model), str(image_dir), "-o", str(out)]) == 0
    csv_paths, scores, is_outlier = _read_csv(out)
    # Every readable image, in sorted order; the corrupt file is not in the CSV.
    assert csv_paths == paths
    assert len(csv_paths) == N_PNG + N_JPEG

    # 1. The saved model, loaded with joblib, on images read in Python.
    images = _load_like_cli(paths)
    model = joblib.load(fitted_model)
    np.testing.assert_allclose(scores, model.score_samples(images), rtol=1e-5)
    np.testing.assert_array_equal(is_outlier, model.predict(images) == -1)

    # 2. The same pipeline fitted in Python: same features, same detector.
    extractor = TorchFeatureExtractor(
        "efficientnet_lite0", image_size=IMAGE_SIZE, device="cpu"
    ).fit(images)
    features = extractor.transform(images)
    detector = MahalanobisDetector(covariance="ledoit_wolf").fit(features)
    np.testing.assert_allclose(scores, detector.score_samples(features), rtol=1e-4)
    np.testing.assert_allclose(
        model.named_steps["detector"].offset_, detector.offset_, rtol=1e-4
    )
    np.testing.assert_array_equal(is_outlier, scores < detector.offset_)


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
    import sklearn_ood.nn._training as training

    monkeypatch.setattr(training, "_get_tqdm", lambda: None)
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
    csv_paths, scores, _ = _read_csv(out)
    expected = [str(image_dir / n) for n in names if n != "missing.png"]
    assert csv_paths == expected
    model = joblib.load(fitted_model)
    np.testing.assert_allclose(
        scores, model.score_samples(_load_like_cli(expected)), rtol=1e-5
    )
    err = capsys.readouterr().err
    assert str(image_dir / "missing.png") in err.split("was skipped:")[1]


def test_csv_to_stdout(image_dir, fitted_model, capsys):
    listing = image_dir / "one.txt"
    listing.write_text("img05.png\n")
    try:
        assert main(["score", str(fitted_model), str(listing)]) == 0
    finally:
        listing.unlink()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,score,is_outlier"
    path, score, flag = lines[1].split(",")
    assert path == str(image_dir / "img05.png")
    model = joblib.load(fitted_model)
    expected = model.score_samples(_load_like_cli([path]))[0]
    assert float(score) == pytest.approx(expected, rel=1e-5)
    assert flag in ("0", "1")
    assert len(lines) == 2


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
    err = capsys.readouterr().err
    assert f"sklearn-ood {command}: error: no PNG or JPEG images found" in err
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
    csv_paths, scores, _ = _read_csv(out)
    assert [Path(p).name for p in csv_paths] == ["img01.png", "img02.png"]
    model = joblib.load(fitted_model)
    np.testing.assert_allclose(
        scores, model.score_samples(_load_like_cli(csv_paths)), rtol=1e-5
    )


def test_only_unreadable_files_is_an_error(fitted_model, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"garbage")
    (folder / "b.jpg").write_bytes(b"")
    assert main(["score", str(fitted_model), str(folder)]) == 2
    err = capsys.readouterr().err
    assert "none of the 2 image files could be read" in err
    assert "2 files could not be read and were skipped" in err


def test_fit_knn_with_contamination(image_dir, readable, tmp_path):
    paths, corrupt = readable
    paths = [p for p in paths if p != corrupt]
    model_path = tmp_path / "knn.joblib"
    args = ["fit", str(image_dir), str(model_path), "--image-size", str(IMAGE_SIZE)]
    args += ["--detector", "knn", "--n-neighbors", "3", "--contamination", "0.2"]
    assert main([*args, "--device", "cpu"]) == 0
    model = joblib.load(model_path)
    detector = model.named_steps["detector"]
    assert isinstance(detector, KNNDetector)
    assert (detector.n_neighbors, detector.contamination) == (3, 0.2)
    images = _load_like_cli(paths)
    features = model.named_steps["features"].transform(images)
    reference = KNNDetector(n_neighbors=3, contamination=0.2).fit(features)
    assert detector.offset_ == pytest.approx(reference.offset_, rel=1e-4)
    out = tmp_path / "scores.csv"
    assert main(["score", str(model_path), str(image_dir), "-o", str(out)]) == 0
    _, scores, is_outlier = _read_csv(out)
    np.testing.assert_allclose(scores, reference.score_samples(features), rtol=1e-4)
    np.testing.assert_array_equal(is_outlier, scores < detector.offset_)


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
    assert message in capsys.readouterr().err


def test_score_rejects_a_model_that_is_not_a_pipeline(image_dir, tmp_path, capsys):
    path = tmp_path / "det.joblib"
    joblib.dump(MahalanobisDetector(), path)
    assert main(["score", str(path), str(image_dir)]) == 2
    err = capsys.readouterr().err
    assert "first step is a TorchFeatureExtractor" in err
    assert "got MahalanobisDetector" in err


def test_python_m_exit_status(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_ood", "fit", str(empty), "m.joblib"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "no PNG or JPEG images found in the folder" in result.stderr
