"""DN2 at its own resolution on Fashion-MNIST one-vs-rest (resize 256, crop 224).

Bergman, Cohen & Hoshen (DN2) resize every image so that its shorter side is
256, centre-crop 224 x 224 and take the pooled penultimate features of a frozen
ImageNet network; the score is the sum of the squared Euclidean distances to
the k = 2 nearest training features (``KNNDetector(n_neighbors=2)``).
Protocol: for each class, fit on all 6,000 training images of the class, score
the full 10,000-image test set, AUROC (%) with the class as normal. Paper: 94.4
mean (with a torchvision ResNet; the DN2 paper's exact ResNet depth is not
stated).

Departures, stated with the numbers: the backbone is the offline
ImageNet-pretrained EfficientNet-Lite0 (``TorchFeatureExtractor(
"efficientnet_lite0", image_size=224, crop_pct=224/256)``), so the resize is
the backbone's own (bicubic, antialiased) and the normalisation its own
config's (mean = std = 0.5), not torchvision's bilinear resize and ImageNet
mean/std of a ResNet.

Extraction of 70,000 images at 224 px runs at about 20 images/s on two quiet
cores (an hour or more), so features are cached in ``benchmarks/_out/`` in
chunks of ``--chunk`` images, written atomically; a run that is stopped resumes
where it left off. The test set is extracted first, then the training images
class by class, and every class whose features are complete is scored; the
table says which classes are missing.

Usage::

    nice python benchmarks/bench_dn2_resolution.py             # full protocol
    python benchmarks/bench_dn2_resolution.py --extract-only   # features only
    python benchmarks/bench_dn2_resolution.py --quick          # seconds, smoke test

``--quick``: 32 px input (resize 36, crop 32: the same 224/256 ratio), 40
training images of classes 0 and 1 and 100 test images, cached in a temporary
folder (or ``--out``): it checks the code path, its AUROCs mean nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from sklearn_ood import KNNDetector, TorchFeatureExtractor
from sklearn_ood.datasets import load_fashion_mnist
from sklearn_ood.metrics import auroc

OUT = Path(__file__).parent / "_out"
#: DN2's Fashion-MNIST mean AUROC (%), Bergman et al. 2020, Table 2.
PAPER_MEAN = 94.4
#: Baselines the DN2 paper lists beside it (mean AUROC %, Fashion-MNIST).
PAPER_BASELINES = {"OC-SVM": 92.8, "GEOM": 93.5, "GOAD": 94.1}


def _extractor(image_size: int, batch_size: int, n_threads: int):
    return TorchFeatureExtractor(
        "efficientnet_lite0",
        image_size=image_size,
        crop_pct=224 / 256,
        batch_size=batch_size,
        n_threads=n_threads,
        device="cpu",
        verbose=False,
    )


def _chunked_features(fe, X, folder: Path, name: str, chunk: int) -> np.ndarray:
    """Features of X, computed chunk by chunk; chunks already on disk are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, start in enumerate(range(0, len(X), chunk)):
        path = folder / f"{name}_{i:03d}_{len(X)}.npy"
        if path.exists():
            parts.append(np.load(path))
            continue
        t0 = time.perf_counter()
        F = fe.transform(X[start : start + chunk])
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, F)
        os.replace(tmp, path)  # atomic: a stopped run never leaves half a chunk
        rate = len(F) / (time.perf_counter() - t0)
        print(
            f"  {name} chunk {i}: {len(F)} images, {rate:.1f} img/s "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        parts.append(F)
    return np.concatenate(parts)


def _data(quick: bool):
    X_train, y_train = load_fashion_mnist(subset="train")
    X_test, y_test = load_fashion_mnist(subset="test")
    if quick:
        rng = np.random.RandomState(0)
        te = np.sort(rng.choice(len(y_test), 100, replace=False))
        keep = np.concatenate([np.flatnonzero(y_train == c)[:40] for c in (0, 1)])
        X_train, y_train = X_train[keep], y_train[keep]
        X_test, y_test = X_test[te], y_test[te]
    return X_train, y_train, X_test, y_test


def run(
    image_size=224,
    batch_size=32,
    chunk=1000,
    n_threads=1,
    classes=tuple(range(10)),
    quick=False,
    out=None,
    extract_only=False,
):
    """Extract (resumably) and score; returns {class: AUROC %} of finished classes."""
    X_train, y_train, X_test, y_test = _data(quick)
    if quick:
        image_size, chunk = 32, 50
        classes = tuple(c for c in classes if c in (0, 1))
    folder = Path(out or OUT) / f"dn2_lite0_{image_size}px"
    fe = _extractor(image_size, batch_size, n_threads).fit(X_train[:2])
    print(f"preprocessing: {fe.preprocessing_}", flush=True)
    F_test = _chunked_features(fe, X_test, folder, "test", chunk)
    results = {}
    for c in classes:
        F_train = _chunked_features(
            fe, X_train[y_train == c], folder, f"train_class{c}", chunk
        )
        if extract_only:
            continue
        det = KNNDetector(n_neighbors=2).fit(F_train)
        results[c] = 100 * auroc(
            np.where(y_test == c, 1, -1), det.score_samples(F_test)
        )
        print(f"class {c}: AUROC {results[c]:.2f}", flush=True)
    return results


def table(results, image_size, quick=False):
    done = sorted(results)
    missing = [c for c in range(10) if c not in results]
    lines = [
        f"DN2 score (kNN k=2, squared Euclidean) on EfficientNet-Lite0 features, "
        f"resize {int(image_size / (224 / 256))} / crop {image_size}, "
        "Fashion-MNIST one-vs-rest, "
        + (
            "QUICK smoke run (40 train / 100 test images)" if quick else "full protocol"
        ),
        "",
        "| class | " + " | ".join(map(str, done)) + " | mean | DN2 paper |",
        "|---" * (len(done) + 3) + "|",
        "| AUROC (%) | "
        + " | ".join(f"{results[c]:.1f}" for c in done)
        + f" | **{np.mean([results[c] for c in done]):.2f}** | {PAPER_MEAN} |",
    ]
    if missing:
        lines.append(f"\nclasses not finished (mean over the others): {missing}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=1000, help="images per cache file")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--classes", type=int, nargs="*", default=list(range(10)))
    parser.add_argument("--out", default=None, help="cache folder (benchmarks/_out)")
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="seconds; smoke test")
    args = parser.parse_args(argv)
    out = args.out
    if args.quick and out is None:
        out = tempfile.mkdtemp(prefix="bench_dn2_")
    results = run(
        image_size=args.image_size,
        batch_size=args.batch_size,
        chunk=args.chunk,
        n_threads=args.threads,
        classes=tuple(args.classes),
        quick=args.quick,
        out=out,
        extract_only=args.extract_only,
    )
    if results:
        print()
        print(table(results, 32 if args.quick else args.image_size, args.quick))


if __name__ == "__main__":
    main()
