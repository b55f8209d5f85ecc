"""Command line interface: ``sklearn-ood`` (also ``python -m sklearn_ood``).

Subcommands
-----------
``demo``
    The canonical pipeline on Fashion-MNIST (offline data), with OOD reports.
``fit``
    Fit a detector on a folder of normal images on top of a pretrained
    backbone's features, and save the fitted :class:`~sklearn.pipeline.Pipeline`
    with joblib.
``score``
    Score images (a folder, one image file, or a text file listing one path per
    line) with a saved model; writes a CSV with the columns ``path``, ``score``
    (``score_samples``: higher = more normal), ``offset`` (the model's
    ``offset_``), ``decision`` (``decision_function``), ``p_value``
    (``p_values``, empty when the model has none), ``prediction`` (``predict``:
    +1 inlier, -1 outlier) and ``is_outlier`` (1 where ``prediction`` is -1).

Files that cannot be read (corrupt, truncated, not an image) are skipped with a
warning on stderr and listed at the end; the command still succeeds. No image
found, no readable image, a missing input, an output that cannot be written or a
model that cannot be used is an error: one line on stderr, exit status 2. An
output file is written under a temporary name in its folder and renamed when
complete, so a failed command leaves an existing file as it was.

How files become arrays
-----------------------
With :func:`sklearn_ood.images.iter_images` (the batched
:func:`~sklearn_ood.images.load_images`), grey when the network takes one
channel and RGB otherwise, at ``size = (floor(height / crop_pct), floor(width /
crop_pct))``, where ``(height, width)`` and ``crop_pct`` come from the
extractor's ``preprocessing_``; the model crops the central ``height x width``
window itself. An extractor without ``image_size`` gets the files as they are
(they must then have one size). So ``model.score_samples(load_images(paths,
size=size, mode=mode))`` in Python gives the scores of the CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import secrets
import shutil
import sys
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import Pipeline

from . import __version__
from ._demo import run_demo
from ._feature_extraction import TorchFeatureExtractor
from ._mahalanobis import MahalanobisDetector
from ._neighbors import KNNDetector
from .images import IMAGE_SUFFIXES, iter_images, list_image_files
from .nn import resolve_device

__all__ = ["main"]

#: Images loaded and scored at once, as a multiple of the batch size.
_CHUNK_BATCHES = 8
_COLUMNS = (
    "path",
    "score",
    "offset",
    "decision",
    "p_value",
    "prediction",
    "is_outlier",
)


class _CLIError(Exception):
    """A user error: printed on one line without a traceback, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line (``prog: error: message``), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------- arguments
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


def _seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number < 2**32:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, 2**32 - 1]; got {value!r}"
        )
    return number


def _device(value: str) -> str:
    try:
        with warnings.catch_warnings():
            # Only the name is checked here; falling back to the CPU is reported
            # (once, a DeviceWarning) when the network runs.
            warnings.simplefilter("ignore")
            resolve_device(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto', 'cpu', 'cuda' or 'cuda:N' (an available GPU); "
            f"got {value!r}"
        ) from None
    return value


# --------------------------------------------------------------- image files
def _image_paths(source: str, recursive: bool) -> list[str]:
    """Paths named by a folder (sorted), one image file, or a list file."""
    src = Path(source)
    if src.is_dir():
        paths = list_image_files(src, recursive=recursive)
        if not paths:
            hint = ""
            if not recursive and any(p.is_dir() for p in src.iterdir()):
                hint = " (subfolders were not searched: add --recursive)"
            raise _CLIError(
                f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in the folder "
                f"'{source}'{hint}."
            )
        return paths
    if src.is_file():
        if src.suffix.lower() in IMAGE_SUFFIXES:
            return [source]
        try:
            lines = src.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise _CLIError(f"cannot read the file list '{source}': {exc}") from exc
        paths = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line)
                paths.append(str(path if path.is_absolute() else src.parent / path))
        if not paths:
            raise _CLIError(f"the file list '{source}' holds no paths.")
        return paths
    raise _CLIError(f"'{source}' is neither a folder, an image file nor a file list.")


def _size_text(size) -> str:
    return "their own size" if size is None else f"{size[0]}x{size[1]} px"


def _input_geometry(extractor) -> tuple[tuple[int, int] | None, str]:
    """File loading size (None: as they are) and mode that suit an extractor."""
    # The extractor's own rule (TorchFeatureExtractor reads files the same way).
    mode = "L" if extractor.input_channels_ == 1 else "RGB"
    return extractor.preprocessing_["load_size"], mode


def _image_batches(paths, size, mode, batch_size):
    """:func:`iter_images` (checked now, read lazily); errors as ``_CLIError``."""
    try:
        batches = iter_images(
            paths, batch_size=batch_size, size=size, mode=mode, errors="skip"
        )
    except ImportError as exc:
        raise _CLIError(str(exc)) from exc
    return _size_errors_as_cli_errors(batches)


def _size_errors_as_cli_errors(batches):
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except ValueError as exc:  # images of several sizes with size=None
            raise _CLIError(
                "the model's TorchFeatureExtractor has image_size=None, so files "
                f"are read at their own size, which must be one: {exc}"
            ) from exc
        yield batch


class _Progress:
    """A tqdm bar over images on stderr (``verbose``); messages print above it."""

    def __init__(self, total: int, verbose: bool, desc: str) -> None:
        tqdm = None
        if verbose:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
        self._bar = (
            tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
            if tqdm is not None
            else None
        )
        # Without tqdm, ``verbose`` gives a one-line summary at the end.
        self._summary = verbose and self._bar is None
        self._desc, self._done, self._start = desc, 0, time.perf_counter()

    def update(self, batch) -> None:
        """Count a batch's files and warn about those that failed."""
        for path, reason in batch.failed:
            self._write(f"warning: skipping '{path}': {reason}")
        n = len(batch.paths) + len(batch.failed)
        self._done += n
        if self._bar is not None:
            self._bar.update(n)

    def _write(self, message: str) -> None:
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


# -------------------------------------------------------------- output files
class _AtomicOutput:
    """A new file beside ``target``, renamed onto it by :meth:`commit`.

    Creating it is the check that ``target`` can be written, done before any
    work; until :meth:`commit` an existing ``target`` is untouched, and the new
    file is removed when the command fails.
    """

    def __init__(self, target: str, what: str) -> None:
        self.target = Path(target)
        if self.target.is_dir():
            raise _CLIError(f"the {what} '{target}' is a folder.")
        folder = self.target.parent
        if not folder.is_dir():
            raise _CLIError(f"the folder of the {what} '{target}' does not exist.")
        # The name ends like the target's, so that joblib picks the same
        # compression from the extension; os.open's 0o666 obeys the umask.
        self.path = folder / f".{secrets.token_hex(4)}.{self.target.name}"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise _CLIError(
                f"cannot write the {what} '{target}': {exc.strerror}."
            ) from exc
        self.file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._done = False

    def commit(self) -> None:
        self.file.close()
        if self.target.exists():
            shutil.copymode(self.target, self.path)  # keep the old permissions
        os.replace(self.path, self.target)
        self._done = True

    def __enter__(self) -> _AtomicOutput:
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._done:
            self.file.close()
            self.path.unlink(missing_ok=True)


# ------------------------------------------------------------------------ fit
def _make_detector(args):
    if args.detector == "knn":
        return KNNDetector(
            n_neighbors=args.n_neighbors, contamination=args.contamination
        )
    return MahalanobisDetector(
        covariance=args.covariance, contamination=args.contamination
    )


def _fit(args) -> int:
    t_start = time.perf_counter()
    source = Path(args.images)
    if source.is_file() and source.suffix.lower() in IMAGE_SUFFIXES:
        raise _CLIError(
            f"'{args.images}' is a single image; fit needs several normal images "
            "(a folder or a file list)."
        )
    paths = _image_paths(args.images, args.recursive)
    with _AtomicOutput(args.model, "model file") as output:
        extractor = TorchFeatureExtractor(
            args.backbone,
            image_size="auto" if args.image_size is None else args.image_size,
            batch_size=args.batch_size,
            device=args.device,
        )
        # fit learns nothing from the pixels (it builds the network and
        # resolves the pre-processing): one blank image gives the loading size.
        extractor.fit(np.zeros((1, 8, 8, 3), np.uint8))
        size, mode = _input_geometry(extractor)
        batches = _image_batches(paths, size, mode, _CHUNK_BATCHES * args.batch_size)
        failed: list[tuple[str, str]] = []
        features = []
        progress = _Progress(len(paths), args.verbose, "features")
        try:
            for batch in batches:
                progress.update(batch)
                failed += batch.failed
                if batch.images is not None:
                    features.append(extractor.transform(batch.images))
        finally:
            progress.close()
        _report_failed(failed)
        if not features:
            raise _CLIError(f"none of the {len(paths)} image files could be read.")
        features = np.concatenate(features)
        try:
            detector = _make_detector(args).fit(features)
        except ValueError as exc:
            raise _CLIError(
                f"cannot fit the detector on {len(features)} images: {exc}"
            ) from exc
        model = Pipeline([("features", extractor), ("detector", detector)])
        output.file.close()
        joblib.dump(model, output.path)
        output.commit()
    print(
        f"Fitted {type(detector).__name__} on {len(features)} images "
        f"({features.shape[1]} {args.backbone} features at "
        f"{_size_text(extractor.preprocessing_['image_size'])}) "
        f"in {time.perf_counter() - t_start:.1f} s; saved to '{args.model}'.",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------------- score
def _find_extractor(model, depth: int = 0):
    """``(pipeline, step name, extractor)``: the model's TorchFeatureExtractor.

    Searched through public attributes only: the ``steps`` of a Pipeline and the
    fitted ``estimator_`` of a wrapper (threshold and conformal detectors).
    """
    if depth > 20:
        return None
    if isinstance(model, Pipeline):
        for name, step in model.steps:
            if isinstance(step, TorchFeatureExtractor):
                return model, name, step
        children = [step for _, step in model.steps]
    else:
        children = [getattr(model, "estimator_", None)]
    for child in children:
        if child is not None and (found := _find_extractor(child, depth + 1)):
            return found
    return None


class _FeatureCache:
    """Stands in for a fitted extractor while a batch is scored by several methods.

    ``score_samples``, ``decision_function``, ``predict`` and ``p_values`` of a
    model each transform the same images: the features are computed once per
    batch and every call gets a copy. Other attributes are the extractor's.
    """

    def __init__(self, extractor) -> None:
        self.extractor = extractor
        self._images = None
        self._features = None

    def transform(self, X):
        last = self._images
        same = X is last or (
            isinstance(X, np.ndarray)
            and isinstance(last, np.ndarray)
            and X.shape == last.shape
            and X.dtype == last.dtype
            and np.array_equal(X, last)
        )
        if not same:
            self._features = self.extractor.transform(X)
            self._images = X
        return self._features.copy()

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stands in for a fitted extractor only

    def __getattr__(self, name):
        if name == "extractor":  # not set yet (e.g. while copying)
            raise AttributeError(name)
        return getattr(self.extractor, name)


def _call(model, method: str, X):
    """``model.<method>(X)``, reaching into a Pipeline's last step; None if absent."""
    if hasattr(model, method):
        return getattr(model, method)(X)
    if isinstance(model, Pipeline):
        return _call(model[-1], method, model[:-1].transform(X))
    return None


def _offset(model):
    while isinstance(model, Pipeline):
        model = model[-1]
    offset = getattr(model, "offset_", None)
    return None if offset is None else float(offset)


def _load_model(path: str):
    if not Path(path).is_file():
        raise _CLIError(f"the model file '{path}' does not exist.")
    try:
        model = joblib.load(path)
    except Exception as exc:  # a file joblib cannot read, of any kind
        raise _CLIError(f"cannot load the model '{path}': {exc}") from exc
    found = _find_extractor(model)
    if found is None or any(
        not callable(getattr(model, m, None))
        for m in ("score_samples", "decision_function", "predict")
    ):
        raise _CLIError(
            "the model must be a fitted detector with score_samples, "
            "decision_function and predict that takes images through a "
            "TorchFeatureExtractor: a Pipeline starting with one (as saved by "
            "'sklearn-ood fit'), or a wrapper of such a Pipeline (estimator_); "
            f"got {type(model).__name__}."
        )
    return model, found


@contextlib.contextmanager
def _features_once(pipeline, step: str, extractor):
    """Put a :class:`_FeatureCache` in the extractor's place, then restore it."""
    pipeline.set_params(**{step: _FeatureCache(extractor)})
    try:
        yield
    finally:
        pipeline.set_params(**{step: extractor})


def _score(args) -> int:
    t_start = time.perf_counter()
    model, (pipeline, step, extractor) = _load_model(args.model)
    if args.device is not None:
        extractor.set_params(device=args.device)
    if args.batch_size is not None:
        extractor.set_params(batch_size=args.batch_size)
    size, mode = _input_geometry(extractor)
    paths = _image_paths(args.images, args.recursive)
    to_stdout = args.output == "-"
    output = (
        contextlib.nullcontext()
        if to_stdout
        else _AtomicOutput(args.output, "CSV file")
    )
    failed: list[tuple[str, str]] = []
    n_scored = n_outliers = 0
    with output, _features_once(pipeline, step, extractor):
        batches = _image_batches(
            paths, size, mode, _CHUNK_BATCHES * extractor.batch_size
        )
        out = sys.stdout if to_stdout else output.file
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        offset = _offset(model)
        offset_text = "" if offset is None else repr(offset)
        progress = _Progress(len(paths), args.verbose, "scoring")
        try:
            for batch in batches:
                progress.update(batch)
                failed += batch.failed
                if batch.images is None:
                    continue
                images = batch.images
                scores = _call(model, "score_samples", images)
                decisions = _call(model, "decision_function", images)
                labels = _call(model, "predict", images)
                p_values = _call(model, "p_values", images)
                for i, path in enumerate(batch.paths):
                    p_text = "" if p_values is None else repr(float(p_values[i]))
                    writer.writerow(
                        [
                            path,
                            repr(float(scores[i])),
                            offset_text,
                            repr(float(decisions[i])),
                            p_text,
                            int(labels[i]),
                            int(labels[i] == -1),
                        ]
                    )
                n_scored += len(batch.paths)
                n_outliers += int((labels == -1).sum())
        finally:
            progress.close()
        _report_failed(failed)
        if n_scored == 0:
            raise _CLIError(f"none of the {len(paths)} image files could be read.")
        if not to_stdout:
            output.commit()
    where = "" if to_stdout else f"; wrote '{args.output}'"
    print(
        f"Scored {n_scored} images, {n_outliers} flagged as outliers, in "
        f"{time.perf_counter() - t_start:.1f} s{where}.",
        file=sys.stderr,
    )
    return 0


# --------------------------------------------------------------------- parser
def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sklearn-ood",
        description="Out-of-distribution detection with a scikit-learn API.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
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
        "--n-fit",
        type=_positive_int,
        default=1500,
        help="images of the pipeline's class",
    )
    demo.add_argument(
        "--n-train", type=_positive_int, default=300, help="images per class (table)"
    )
    demo.add_argument("--n-test", type=_positive_int, default=2000, help="test images")
    demo.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="network input size in pixels (default: the backbone's, 112)",
    )
    demo.add_argument("--batch-size", type=_positive_int, default=64)
    demo.add_argument("--normal-class", type=int, default=0, choices=range(10))
    demo.add_argument("--random-state", type=_seed, default=0)
    demo.add_argument("--verbose", action="store_true", help="progress bars")
    demo.set_defaults(func=run_demo)

    images_help = (
        "a folder of images (PNG, JPEG, ...){} or a text file with one image path "
        "per line (relative paths are relative to the list's folder; '#' starts a "
        "comment)"
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
    fit.add_argument("images", help=images_help.format(""))
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
        default=None,
        help="network input size in pixels (default: the backbone's own, 112 for "
        "efficientnet_lite0, the same as TorchFeatureExtractor in Python)",
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
        help="'auto' (2.5%%) or the share in (0, 0.5] of new normal images that "
        "the saved model flags (default: %(default)s)",
    )
    _add_common(fit, batch_default=64)
    fit.set_defaults(func=_fit)

    score = sub.add_parser(
        "score",
        help="score images with a saved model and write a CSV",
        description=(
            "Score images with a saved model: one written by 'sklearn-ood fit', "
            "or any fitted detector that takes images through a "
            "TorchFeatureExtractor (a Pipeline starting with one, or a threshold "
            "or conformal wrapper of such a Pipeline). Writes the CSV columns "
            + ", ".join(_COLUMNS)
            + " (score: higher = more normal; prediction: +1 inlier, -1 outlier). "
            "Unreadable files are skipped with a warning and listed at the end."
        ),
    )
    score.add_argument("model", help="saved model file (joblib)")
    score.add_argument("images", help=images_help.format(", one image file"))
    score.add_argument(
        "-o",
        "--output",
        default="-",
        help="CSV file to write ('-', the default, is standard output); an "
        "existing file is replaced only when scoring succeeds",
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
        type=_device,
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
        Exit status: 0 on success, 2 for an error (bad arguments, no image
        found, no readable image, an output that cannot be written, a model that
        cannot be used, a missing optional dependency).

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
