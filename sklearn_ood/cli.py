"""Command line interface: ``sklearn-ood`` (also ``python -m sklearn_ood``).

Subcommands
-----------
``demo``
    The canonical pipeline on Fashion-MNIST (offline data), with OOD reports.
``fit``
    Fit a detector on a folder of normal images (PNG/JPEG, read with Pillow) on
    top of a pretrained backbone's features, and save the fitted
    :class:`~sklearn.pipeline.Pipeline` with joblib.
``score``
    Score a folder of images, or a text file listing one image path per line,
    with a saved model; writes a CSV with the columns ``path``, ``score``
    (``score_samples``: higher = more normal) and ``is_outlier`` (1 where
    ``predict`` is -1, else 0).

Files that cannot be read (corrupt, truncated, not an image) are skipped with a
warning on stderr and listed at the end; the command still succeeds. No image
found (an empty folder or list), a missing input, or a model that cannot be used
is an error with exit status 2.

How files become arrays
-----------------------
Each file is opened with Pillow, rotated by its EXIF orientation, converted to
RGB (grey when the network takes one channel) and resized and centre-cropped to
``floor(height / crop_pct) x floor(width / crop_pct)`` with
:func:`PIL.ImageOps.fit` (bicubic), where ``(height, width)`` and ``crop_pct``
come from the extractor's ``preprocessing_``. The saved pipeline then takes the
resulting ``(n_images, H, W, 3)`` uint8 array (and crops the central
``height x width`` window itself), so the same scores are obtained in Python with
``joblib.load(path).score_samples(images)``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["main"]

#: File suffixes (case-insensitive) read from a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Images loaded and scored at once, as a multiple of the batch size.
_CHUNK_BATCHES = 8


class _CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


def _demo(args) -> int:
    import numpy as np
    from sklearn.pipeline import Pipeline

    from . import KNNDetector, MahalanobisDetector, TorchFeatureExtractor
    from .datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, one_vs_rest_split
    from .metrics import auroc, ood_report

    t_start = time.perf_counter()
    rng = np.random.RandomState(args.random_state)
    X_train_all, y_train_all = load_fashion_mnist(subset="train")
    X_test, y_test = load_fashion_mnist(subset="test")
    # A class-stratified sample so that the demo runs in minutes on a CPU.
    train_idx = np.concatenate(
        [
            rng.choice(np.flatnonzero(y_train_all == c), args.n_train, replace=False)
            for c in range(10)
        ]
    )
    test_idx = np.sort(rng.choice(len(y_test), args.n_test, replace=False))
    X_train, y_train = X_train_all[train_idx], y_train_all[train_idx]
    X_test, y_test = X_test[test_idx], y_test[test_idx]
    print(
        f"Fashion-MNIST one-vs-rest, {args.n_test} test images (all classes), "
        f"EfficientNet-Lite0 (ImageNet) features at {args.image_size} px.\n"
    )

    # 1. The canonical pipeline, end to end, for one normal class, fitted on
    # more images than features (1280) so the covariance is well estimated.
    normal = args.normal_class
    X_fit, _, X_eval, y_eval = one_vs_rest_split(
        X_train_all,
        y_train_all,
        X_test,
        y_test,
        normal,
        n_train=args.n_fit,
        random_state=args.random_state,
    )
    pipe = Pipeline(
        [
            (
                "feat",
                TorchFeatureExtractor(
                    "efficientnet_lite0",
                    image_size=args.image_size,
                    batch_size=args.batch_size,
                    verbose=args.verbose,
                ),
            ),
            # 1500 images for 1280 features: shrink the covariance (the
            # empirical one is nearly singular, which makes the held-out
            # estimate behind offset_ pessimistic).
            ("ood", MahalanobisDetector(mode="marginal", covariance="ledoit_wolf")),
        ]
    )
    t0 = time.perf_counter()
    pipe.fit(X_fit)
    scores = pipe.score_samples(X_eval)
    flagged = np.mean(pipe.predict(X_eval)[y_eval == 1] == -1)
    print(
        f"Pipeline(TorchFeatureExtractor, MahalanobisDetector) trained on "
        f"'{FASHION_MNIST_CLASSES[normal]}' ({len(X_fit)} images) in "
        f"{time.perf_counter() - t0:.1f} s; {100 * flagged:.1f}% of held-out normal "
        "images flagged (contamination='auto' targets 2.5%)."
    )
    print(ood_report(y_eval, {"mahalanobis (pipeline)": scores}))

    # 2. All ten classes: extract features once, compare detectors.
    extractor = pipe.named_steps["feat"]
    F_train = extractor.transform(X_train)
    F_test = extractor.transform(X_test)
    detectors = {
        "Mahalanobis marginal": MahalanobisDetector(mode="marginal"),
        "Mahalanobis Ledoit-Wolf": MahalanobisDetector(covariance="ledoit_wolf"),
        "kNN k=2 (DN2)": KNNDetector(n_neighbors=2),
    }
    aurocs = {name: [] for name in detectors}
    for c in range(10):
        y_true = np.where(y_test == c, 1, -1)
        for name, det in detectors.items():
            det.fit(F_train[y_train == c])
            aurocs[name].append(auroc(y_true, det.score_samples(F_test)))
    width = max(len(n) for n in FASHION_MNIST_CLASSES)
    print(
        f"\nAUROC per normal class (one-vs-rest, {args.n_train} training images "
        "per class):"
    )
    header = f"{'class':<{width}} " + " ".join(f"{n:>24}" for n in detectors)
    print(header)
    for c in range(10):
        row = " ".join(f"{aurocs[n][c]:>24.4f}" for n in detectors)
        print(f"{FASHION_MNIST_CLASSES[c]:<{width}} {row}")
    means = " ".join(f"{np.mean(aurocs[n]):>24.4f}" for n in detectors)
    print(f"{'mean':<{width}} {means}")
    print(
        "\nPapers (full data): DN2 94.4, GEOM 93.5, OC-SVM 92.8 mean AUROC; "
        "see benchmarks/RESULTS.md for the full protocol."
    )
    print(f"Total time {time.perf_counter() - t_start:.1f} s.")
    return 0


def _contamination(value: str):
    if value == "auto":
        return value
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0.0 < share <= 0.5:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or a float in (0, 0.5]; got {value!r}"
        )
    return share


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value!r}")
    return number


# ---------------------------------------------------------------- image files
def _collect_paths(source: str, recursive: bool) -> list[str]:
    """Image paths of a folder (sorted) or of a list file (in its order)."""
    src = Path(source)
    if src.is_dir():
        pattern = "**/*" if recursive else "*"
        paths = sorted(
            str(p)
            for p in src.glob(pattern)
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
        )
        if not paths:
            hint = ""
            if not recursive and any(p.is_dir() for p in src.iterdir()):
                hint = " (subfolders were not searched: add --recursive)"
            raise _CLIError(
                f"no PNG or JPEG images found in the folder '{source}'{hint}."
            )
        return paths
    if src.is_file():
        if src.suffix.lower() in IMAGE_SUFFIXES:
            raise _CLIError(
                f"'{source}' is an image file; pass a folder, or a text file that "
                "lists one image path per line."
            )
        try:
            lines = src.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise _CLIError(f"cannot read the file list '{source}': {exc}") from exc
        base = src.parent
        paths = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line)
                paths.append(str(path if path.is_absolute() else base / path))
        if not paths:
            raise _CLIError(f"the file list '{source}' holds no paths.")
        return paths
    raise _CLIError(f"'{source}' is neither a folder nor a file list.")


def _read_image(path: str, size: tuple[int, int], mode: str):
    """One image as a uint8 array of shape (H, W) or (H, W, 3)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img).convert(mode)
    height, width = size
    img = ImageOps.fit(img, (width, height), method=Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _read_chunks(
    paths: list[str],
    size: tuple[int, int],
    mode: str,
    chunk: int,
    failed: list[tuple[str, str]],
    report,
) -> Iterator[tuple[list[str], object, int]]:
    """Yield ``(paths_read, images or None, n_files)`` per chunk; record failures."""
    import numpy as np
    from PIL import Image

    for start in range(0, len(paths), chunk):
        read, images = [], []
        for path in paths[start : start + chunk]:
            try:
                images.append(_read_image(path, size, mode))
            except (
                OSError,
                ValueError,
                SyntaxError,
                Image.DecompressionBombError,
            ) as e:
                reason = f"{type(e).__name__}: {e}"
                failed.append((path, reason))
                report(f"warning: skipping '{path}': {reason}")
                continue
            read.append(path)
        n_files = min(chunk, len(paths) - start)
        yield read, (np.stack(images) if images else None), n_files


def _input_geometry(extractor) -> tuple[tuple[int, int], str]:
    """File loading size and Pillow mode that suit a fitted extractor."""
    pre = extractor.preprocessing_
    if pre["image_size"] is None:
        raise _CLIError(
            "the model's TorchFeatureExtractor has image_size=None; the command "
            "line needs a fixed input size (set image_size when fitting)."
        )
    height, width = pre["image_size"]
    crop = pre["crop_pct"]
    size = (math.floor(height / crop), math.floor(width / crop))
    mode = "L" if extractor.input_channels_ == 1 else "RGB"
    return size, mode


class _Progress:
    """A tqdm bar over images on stderr (``verbose``); messages print above it."""

    def __init__(self, total: int, verbose: bool, desc: str) -> None:
        from .nn._training import _get_tqdm

        tqdm = _get_tqdm() if verbose else None
        self._bar = (
            tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
            if tqdm is not None
            else None
        )
        # Without tqdm, ``verbose`` gives a one-line summary at the end.
        self._summary = verbose and self._bar is None
        self._desc, self._done, self._start = desc, 0, time.perf_counter()

    def update(self, n: int) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._summary:
            elapsed = time.perf_counter() - self._start
            print(
                f"{self._desc}: {self._done} images in {elapsed:.1f} s", file=sys.stderr
            )


def _report_failed(failed: list[tuple[str, str]]) -> None:
    if failed:
        print(
            f"{len(failed)} file{'s' if len(failed) != 1 else ''} could not be read "
            f"and {'were' if len(failed) != 1 else 'was'} skipped:",
            file=sys.stderr,
        )
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)


def _split_model(model):
    """Return ``(feature steps, TorchFeatureExtractor, detector)`` of a pipeline."""
    from sklearn.pipeline import Pipeline

    from ._feature_extraction import TorchFeatureExtractor

    if not (
        isinstance(model, Pipeline)
        and len(model.steps) >= 2
        and isinstance(model.steps[0][1], TorchFeatureExtractor)
        and hasattr(model.steps[-1][1], "score_samples")
    ):
        raise _CLIError(
            "the model must be a scikit-learn Pipeline whose first step is a "
            "TorchFeatureExtractor and whose last step is a detector (as saved by "
            f"'sklearn-ood fit'); got {type(model).__name__}."
        )
    return model[:-1], model.steps[0][1], model.steps[-1][1]


# ------------------------------------------------------------------------ fit
def _make_detector(args):
    from ._mahalanobis import MahalanobisDetector
    from ._neighbors import KNNDetector

    if args.detector == "knn":
        return KNNDetector(
            n_neighbors=args.n_neighbors, contamination=args.contamination
        )
    return MahalanobisDetector(
        covariance=args.covariance, contamination=args.contamination
    )


def _fit(args) -> int:
    import joblib
    import numpy as np
    from sklearn.pipeline import Pipeline

    from ._feature_extraction import TorchFeatureExtractor

    t_start = time.perf_counter()
    paths = _collect_paths(args.images, args.recursive)
    output = Path(args.model)
    if not output.parent.is_dir():
        raise _CLIError(f"the folder of the output '{args.model}' does not exist.")
    extractor = TorchFeatureExtractor(
        args.backbone,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
    )
    # fit learns nothing from the pixels (it builds the network and resolves the
    # pre-processing), so one blank image is enough to know the loading size.
    extractor.fit(np.zeros((1, args.image_size, args.image_size, 3), np.uint8))
    size, mode = _input_geometry(extractor)
    failed: list[tuple[str, str]] = []
    features = []
    progress = _Progress(len(paths), args.verbose, "features")
    try:
        chunks = _read_chunks(
            paths, size, mode, _CHUNK_BATCHES * args.batch_size, failed, progress.write
        )
        for _, images, n_done in chunks:
            if images is not None:
                features.append(extractor.transform(images))
            progress.update(n_done)
    finally:
        progress.close()
    _report_failed(failed)
    if not features:
        raise _CLIError(f"none of the {len(paths)} image files could be read.")
    features = np.concatenate(features)
    detector = _make_detector(args).fit(features)
    model = Pipeline([("features", extractor), ("detector", detector)])
    joblib.dump(model, output)
    print(
        f"Fitted {type(detector).__name__} on {len(features)} images "
        f"({features.shape[1]} {args.backbone} features at {args.image_size} px) "
        f"in {time.perf_counter() - t_start:.1f} s; saved to '{args.model}'.",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------------- score
def _score(args) -> int:
    import joblib

    t_start = time.perf_counter()
    if not Path(args.model).is_file():
        raise _CLIError(f"the model file '{args.model}' does not exist.")
    try:
        model = joblib.load(args.model)
    except Exception as exc:  # a file joblib cannot read, of any kind
        raise _CLIError(f"cannot load the model '{args.model}': {exc}") from exc
    features, extractor, detector = _split_model(model)
    if args.device is not None:
        extractor.set_params(device=args.device)
    if args.batch_size is not None:
        extractor.set_params(batch_size=args.batch_size)
    size, mode = _input_geometry(extractor)
    paths = _collect_paths(args.images, args.recursive)

    failed: list[tuple[str, str]] = []
    n_scored = n_outliers = 0
    to_stdout = args.output == "-"
    try:
        out = sys.stdout if to_stdout else open(args.output, "w", newline="")
    except OSError as exc:
        raise _CLIError(f"cannot write the CSV file '{args.output}': {exc}") from exc
    progress = _Progress(len(paths), args.verbose, "scoring")
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["path", "score", "is_outlier"])
        chunk = _CHUNK_BATCHES * extractor.batch_size
        for read, images, n_done in _read_chunks(
            paths, size, mode, chunk, failed, progress.write
        ):
            if images is not None:
                feats = features.transform(images)
                scores = detector.score_samples(feats)
                outlier = detector.predict(feats) == -1
                for path, score, flag in zip(read, scores, outlier):
                    writer.writerow([path, repr(float(score)), int(flag)])
                n_scored += len(read)
                n_outliers += int(outlier.sum())
            progress.update(n_done)
    finally:
        progress.close()
        if not to_stdout:
            out.close()
    _report_failed(failed)
    if n_scored == 0:
        raise _CLIError(f"none of the {len(paths)} image files could be read.")
    where = "" if to_stdout else f"; wrote '{args.output}'"
    print(
        f"Scored {n_scored} images, {n_outliers} flagged as outliers, in "
        f"{time.perf_counter() - t_start:.1f} s{where}.",
        file=sys.stderr,
    )
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sklearn-ood",
        description="Out-of-distribution detection with a scikit-learn API.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the canonical pipeline on Fashion-MNIST (offline data)",
        description=(
            "Fashion-MNIST one-vs-rest with ImageNet-pretrained EfficientNet-Lite0 "
            "features, MahalanobisDetector and KNNDetector; prints OOD reports."
        ),
    )
    demo.add_argument(
        "--n-fit", type=int, default=1500, help="images of the pipeline's class"
    )
    demo.add_argument(
        "--n-train", type=int, default=300, help="images per class (table)"
    )
    demo.add_argument("--n-test", type=int, default=2000, help="test images")
    demo.add_argument("--image-size", type=int, default=64, help="input pixels")
    demo.add_argument("--batch-size", type=int, default=64)
    demo.add_argument("--normal-class", type=int, default=0, choices=range(10))
    demo.add_argument("--random-state", type=int, default=0)
    demo.add_argument("--verbose", action="store_true", help="progress bars")
    demo.set_defaults(func=_demo)

    images_help = (
        "a folder of PNG/JPEG images, or a text file with one image path per line "
        "(relative paths are relative to the list's folder; '#' starts a comment)"
    )
    fit = sub.add_parser(
        "fit",
        help="fit a detector on a folder of normal images and save it",
        description=(
            "Extract pretrained-backbone features of normal (in-distribution) "
            "images, fit an OOD detector on them and save the fitted scikit-learn "
            "Pipeline(TorchFeatureExtractor, detector) with joblib. Unreadable "
            "files are skipped with a warning."
        ),
    )
    fit.add_argument("images", help=images_help)
    fit.add_argument("model", help="output file for the fitted model (joblib)")
    fit.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        help="backbone name for sklearn_ood.backbones.load_backbone "
        "(default: %(default)s, loads offline; 'timm:<name>' needs timm)",
    )
    fit.add_argument(
        "--image-size",
        type=_positive_int,
        default=64,
        help="network input size in pixels (default: %(default)s)",
    )
    fit.add_argument(
        "--detector",
        choices=("mahalanobis", "knn"),
        default="mahalanobis",
        help="MahalanobisDetector or KNNDetector (default: %(default)s)",
    )
    fit.add_argument(
        "--covariance",
        choices=("empirical", "ledoit_wolf", "oas"),
        default="ledoit_wolf",
        help="covariance estimate of the Mahalanobis detector (default: "
        "%(default)s, suits folders with fewer images than features)",
    )
    fit.add_argument(
        "--n-neighbors",
        type=_positive_int,
        default=2,
        help="neighbours of the kNN detector (default: %(default)s, as DN2)",
    )
    fit.add_argument(
        "--contamination",
        type=_contamination,
        default="auto",
        help="'auto' (2.5%%) or the share in (0, 0.5] of normal images, scored "
        "as new data, that the threshold flags (default: %(default)s)",
    )
    _add_common(fit, batch_default=64)
    fit.set_defaults(func=_fit)

    score = sub.add_parser(
        "score",
        help="score images with a saved model and write a CSV",
        description=(
            "Score images with a model saved by 'sklearn-ood fit' (or any joblib "
            "file holding a Pipeline whose first step is a TorchFeatureExtractor). "
            "Writes the CSV columns path, score (higher = more normal) and "
            "is_outlier (1 or 0). Unreadable files are skipped with a warning and "
            "listed at the end."
        ),
    )
    score.add_argument("model", help="model file written by 'sklearn-ood fit'")
    score.add_argument("images", help=images_help)
    score.add_argument(
        "-o",
        "--output",
        default="-",
        help="CSV file to write ('-', the default, is standard output)",
    )
    _add_common(score, batch_default=None)
    score.set_defaults(func=_score)
    return parser


def _add_common(parser: argparse.ArgumentParser, batch_default) -> None:
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="search subfolders too"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=batch_default,
        help="images per forward pass"
        + (" (default: %(default)s)" if batch_default else " (default: the model's)"),
    )
    parser.add_argument(
        "--device",
        default="auto" if batch_default else None,
        help="'auto' (GPU when available), 'cpu', 'cuda' or 'cuda:N'"
        + (" (default: %(default)s)" if batch_default else " (default: the model's)"),
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show a progress bar (tqdm)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the ``sklearn-ood`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status: 0 on success, 2 for a usage error (bad arguments, no image
        found, no readable image, a model that cannot be used).

    Examples
    --------
    >>> from sklearn_ood.cli import main
    >>> main(["score", "no-such-model.joblib", "images/"])
    2
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _CLIError as exc:
        print(f"sklearn-ood {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
