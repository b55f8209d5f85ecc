"""Tests of sklearn_ood.images: image files, validation and pre-processing."""

import sys

import numpy as np
import pytest
import torch

from sklearn_ood.images import (
    center_crop,
    check_images,
    iter_images,
    list_image_files,
    load_images,
    resize_images,
    to_minus1_1,
)


def _rand(shape, dtype, seed=0):
    rng = np.random.RandomState(seed)
    if dtype == np.uint8:
        return rng.randint(0, 256, size=shape).astype(np.uint8)
    if dtype == np.int16:
        return rng.randint(-300, 300, size=shape).astype(np.int16)
    if dtype == np.bool_:
        return rng.rand(*shape) > 0.5
    return (rng.randn(*shape) * 50).astype(dtype)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.float32, np.float64, np.int16, np.bool_]
)
@pytest.mark.parametrize(
    "shape, layout, to_nchw",
    [
        ((2, 5, 7), "NHW", lambda a: a[:, None]),
        ((2, 5, 7, 3), "NHWC", lambda a: a.transpose(0, 3, 1, 2)),
        ((2, 5, 7, 1), "NHWC", lambda a: a.transpose(0, 3, 1, 2)),
        ((2, 5, 7, 4), "NHWC", lambda a: a.transpose(0, 3, 1, 2)),
        ((2, 3, 5, 7), "NCHW", lambda a: a),
        ((2, 1, 6, 8), "NCHW", lambda a: a),
        # both axes could be channels: the last one wins for NumPy
        ((2, 3, 5, 3), "NHWC", lambda a: a.transpose(0, 3, 1, 2)),
    ],
)
def test_numpy_layouts_match_manual_transpose(shape, layout, to_nchw, dtype):
    X = _rand(shape, dtype)
    X_before = X.copy()
    x, info = check_images(X)
    expected = np.ascontiguousarray(to_nchw(X)).astype(np.float32)
    assert x.dtype == torch.float32
    assert x.is_contiguous()
    np.testing.assert_array_equal(x.numpy(), expected)
    assert info.layout == layout
    assert info.was_uint8 == (dtype == np.uint8)
    assert info.input_channels == expected.shape[1]
    assert not info.is_tensor
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.float32, torch.float64, torch.int64, torch.float16]
)
def test_torch_tensors_are_channels_first(dtype):
    X = torch.from_numpy(_rand((2, 1, 5, 3), np.float64)).to(dtype)
    x, info = check_images(X)
    # A NumPy array of this shape would be read as channels-last; a tensor is NCHW.
    assert tuple(x.shape) == (2, 1, 5, 3)
    np.testing.assert_array_equal(x.numpy(), X.to(torch.float32).numpy())
    assert info.layout == "NCHW" and info.is_tensor
    assert info.was_uint8 == (dtype == torch.uint8)

    grey, info = check_images(X[:, 0])
    assert tuple(grey.shape) == (2, 1, 5, 3) and info.layout == "NHW"
    np.testing.assert_array_equal(grey.numpy(), x.numpy())


def test_uint8_values_kept_on_0_255_scale():
    X = np.array([[[0, 128], [255, 7]]], dtype=np.uint8)
    x, info = check_images(X)
    assert info.was_uint8
    np.testing.assert_array_equal(x.numpy()[0, 0], [[0.0, 128.0], [255.0, 7.0]])
    with pytest.raises(ValueError, match="uint8"):
        check_images(X, allow_uint8=False)


def test_nested_list_input():
    x, info = check_images([[[1, 2], [3, 4]]])
    np.testing.assert_array_equal(x.numpy(), [[[[1.0, 2.0], [3.0, 4.0]]]])
    assert info.layout == "NHW"


@pytest.mark.parametrize("as_tensor", [False, True])
def test_grey_is_replicated_to_requested_channels(as_tensor):
    X = _rand((3, 4, 5), np.float32)
    x, info = check_images(torch.from_numpy(X) if as_tensor else X, channels=3)
    assert tuple(x.shape) == (3, 3, 4, 5)
    for c in range(3):
        np.testing.assert_array_equal(x[:, c].numpy(), X)
    assert info.input_channels == 1
    # replicated channels are independent memory (in-place edits stay local)
    x[:, 0] += 1
    np.testing.assert_array_equal(x[:, 1].numpy(), X)


def test_channel_mismatch_error_names_both_counts():
    X = _rand((2, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"3 channel.*1 are expected"):
        check_images(X, channels=1)
    with pytest.raises(ValueError, match="'channels' parameter"):
        check_images(X, channels=0)


def test_ambiguous_channel_axis_asks_for_nchw_tensor():
    X = np.zeros((2, 5, 6, 7), dtype=np.float32)
    with pytest.raises(ValueError, match=r"torch\.Tensor of shape \(N, C, H, W\)"):
        check_images(X)
    # the same data as a tensor is accepted as 5-channel NCHW
    x, _ = check_images(torch.from_numpy(X))
    assert tuple(x.shape) == (2, 5, 6, 7)


@pytest.mark.parametrize(
    "X, err, match",
    [
        (np.zeros((0, 5, 5)), ValueError, "0 sample"),
        (np.zeros((3, 0, 5)), ValueError, "empty image dimension"),
        (np.zeros((4, 784)), ValueError, "reshape"),
        (np.zeros(5), ValueError, "1 dimensions"),
        (np.zeros((1, 2, 3, 4, 5)), ValueError, "5 dimensions"),
        (np.array([[["a", "b"]]]), TypeError, "numeric dtype"),
        (np.zeros((2, 3, 3), dtype=complex), TypeError, "complex"),
        (torch.zeros(2, 3, 3, dtype=torch.complex64), TypeError, "complex"),
        (np.full((1, 2, 2), np.nan), ValueError, "NaN or infinity"),
        (np.full((1, 2, 2), np.inf), ValueError, "NaN or infinity"),
        (torch.full((1, 1, 2, 2), float("nan")), ValueError, "NaN or infinity"),
        # finite in float64 but not representable in float32
        (np.full((1, 2, 2), 1e300), ValueError, "NaN or infinity"),
    ],
)
def test_invalid_inputs(X, err, match):
    with pytest.raises(err, match=match):
        check_images(X)


def test_error_uses_given_name():
    with pytest.raises(ValueError, match="X_test"):
        check_images(np.zeros((0, 2, 2)), name="X_test")


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.random.RandomState(0).rand(2, 3, 4, 5).astype(np.float32),
        lambda: np.random.RandomState(0).rand(2, 4, 5).astype(np.float32),
        lambda: torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)),
        lambda: torch.rand(2, 4, 5, generator=torch.Generator().manual_seed(0)),
    ],
)
def test_output_never_aliases_input(make):
    X = make()
    before = X.copy() if isinstance(X, np.ndarray) else X.clone()
    x, _ = check_images(X)
    x.mul_(0).add_(7)
    if isinstance(X, np.ndarray):
        np.testing.assert_array_equal(X, before)
    else:
        assert torch.equal(X, before)


def test_requires_grad_input_is_detached():
    X = torch.rand(2, 1, 3, 3, requires_grad=True)
    x, _ = check_images(X)
    assert not x.requires_grad


def test_resize_shorter_side_and_exact_size():
    x = torch.zeros(2, 3, 40, 80)
    assert tuple(resize_images(x, 20).shape) == (2, 3, 20, 40)
    assert tuple(resize_images(x.transpose(2, 3), 20).shape) == (2, 3, 40, 20)
    assert tuple(resize_images(x, (10, 12)).shape) == (2, 3, 10, 12)
    # a constant image stays constant under bilinear antialiased resizing
    const = torch.full((1, 1, 9, 13), 3.5)
    np.testing.assert_allclose(resize_images(const, (4, 5)).numpy(), 3.5, rtol=1e-6)


def test_resize_area_and_nearest_match_numpy():
    img = np.random.RandomState(0).rand(2, 3, 8, 6).astype(np.float32)
    x = torch.from_numpy(img)
    # area down-sampling by 2 = mean over 2x2 blocks
    block_mean = img.reshape(2, 3, 4, 2, 3, 2).mean(axis=(3, 5))
    out = resize_images(x, (4, 3), interpolation="area")
    np.testing.assert_allclose(out.numpy(), block_mean, rtol=1e-6)
    # nearest up-sampling by 2 = repeat each pixel
    up = np.repeat(np.repeat(img, 2, axis=2), 2, axis=3)
    out = resize_images(x, (16, 12), interpolation="nearest")
    np.testing.assert_array_equal(out.numpy(), up)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, "'size' parameter"),
        ({"size": (3,)}, "'size' parameter"),
        ({"size": 3, "interpolation": "lanczos"}, "'interpolation' parameter"),
    ],
)
def test_resize_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resize_images(torch.zeros(1, 1, 4, 4), **kwargs)


def test_resize_requires_nchw_tensor():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        resize_images(np.zeros((1, 1, 4, 4)), 2)


def test_center_crop_matches_slicing():
    img = np.arange(2 * 1 * 5 * 7, dtype=np.float32).reshape(2, 1, 5, 7)
    out = center_crop(torch.from_numpy(img), (2, 4))
    # top = round(3 / 2) = 2 (round half to even), left = round(3 / 2) = 2
    np.testing.assert_array_equal(out.numpy(), img[:, :, 2:4, 2:6])
    out = center_crop(torch.from_numpy(img), 3)
    np.testing.assert_array_equal(out.numpy(), img[:, :, 1:4, 2:5])
    with pytest.raises(ValueError, match="Cannot crop"):
        center_crop(torch.from_numpy(img), 6)


def test_to_minus1_1_formula_and_no_mutation():
    values = np.array([0, 1, 100, 254, 255], dtype=np.float32)
    x = torch.from_numpy(values.copy())
    out = to_minus1_1(x)
    np.testing.assert_allclose(out.numpy(), 2 * (values / 255) - 1, rtol=1e-6)
    np.testing.assert_array_equal(x.numpy(), values)
    # integer tensors are promoted to float
    out = to_minus1_1(torch.tensor([0, 255], dtype=torch.uint8))
    assert out.tolist() == [-1.0, 1.0]
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        to_minus1_1(values)


# --------------------------------------------------------------------------- #
# load_images / iter_images / list_image_files: real files written in tmp_path
# --------------------------------------------------------------------------- #
def _pil_cover_crop(path, size, mode):
    """Independent statement of the loading rule with Pillow and NumPy.

    Open, apply the EXIF orientation, convert; scale (aspect kept) so that the
    image just covers ``size``: the side that is relatively shorter becomes
    exactly the target and the other one is scaled by the same factor; then
    slice the central window, starting at round((H' - h) / 2) (half to even)
    as torchvision's center_crop does.
    """
    from PIL import Image, ImageOps

    h, w = size
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert(mode)
    W, H = img.size
    if H * w >= W * h:  # relatively taller than the target: width decides
        new_w, new_h = w, max(h, round(H * w / W))
    else:
        new_w, new_h = max(w, round(W * h / H)), h
    if (new_w, new_h) != (W, H):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    pixels = np.asarray(img)
    top, left = round((new_h - h) / 2.0), round((new_w - w) / 2.0)
    return pixels[top : top + h, left : left + w]


@pytest.fixture
def image_files(tmp_path):
    """PNG and JPEG files of several sizes, modes and aspect ratios."""
    from PIL import Image

    rng = np.random.RandomState(0)
    specs = {
        "grey_28x28.png": ((28, 28), "L"),
        "rgb_30x40.jpg": ((30, 40, 3), "RGB"),
        "rgb_50x20.png": ((50, 20, 3), "RGB"),
        "rgba_17x33.png": ((17, 33, 4), "RGBA"),
        "grey_64x48.jpeg": ((64, 48), "L"),
    }
    paths = []
    for name, (shape, mode) in specs.items():
        pixels = rng.randint(0, 256, size=shape).astype(np.uint8)
        Image.fromarray(pixels, mode).save(tmp_path / name, quality=95)
        paths.append(tmp_path / name)
    return paths


@pytest.mark.parametrize("size", [24, (24, 20), (9, 31)])
def test_load_images_equals_pil_resize_and_numpy_crop(image_files, size):
    X = load_images(image_files, size=size)  # mixed grey/RGB: "auto" gives RGB
    pair = (size, size) if isinstance(size, int) else size
    expected = np.stack([_pil_cover_crop(p, pair, "RGB") for p in image_files])
    assert X.dtype == np.uint8 and X.shape == (len(image_files), *pair, 3)
    # Same Pillow filter on the same pixels: equal bytes, not just close.
    np.testing.assert_array_equal(X, expected)
    grey = load_images(image_files, size=size, mode="L")
    expected = np.stack([_pil_cover_crop(p, pair, "L") for p in image_files])
    np.testing.assert_array_equal(grey, expected)


def test_load_images_keeps_aspect_and_centre():
    """A disc in a 2:1 image stays a centred disc: the scale is the same on both
    axes and the crop is central. 60x120 to 30x30: scale 1/2, then the central
    30 of 60 columns. A disc of radius 20 becomes radius 10: its area is
    pi 10^2 = 314 pixels up to the antialiased rim (circumference 2 pi 10 = 63
    pixels, each at most half in or out of the threshold: +-32)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (120, 60), 0)
    ImageDraw.Draw(img).ellipse((40, 10, 80, 50), fill=255)
    X = load_images([img], size=30)
    assert X.shape == (1, 30, 30)
    mask = X[0] > 127
    assert abs(mask.sum() - np.pi * 10**2) <= np.pi * 10
    rows, cols = np.nonzero(mask)
    # centred: the centroid of a symmetric disc is the window's centre (14.5)
    assert abs(rows.mean() - 14.5) <= 0.5 and abs(cols.mean() - 14.5) <= 0.5
    # round: same extent along both axes (a squashed disc would differ by ~2x)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 1


def test_load_images_exact_size_is_untouched(tmp_path):
    from PIL import Image

    pixels = np.random.RandomState(1).randint(0, 256, (12, 16, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_images(tmp_path / "a.png")[0], pixels)
    np.testing.assert_array_equal(
        load_images(tmp_path / "a.png", size=(12, 16))[0], pixels
    )


def test_grey_and_rgb_modes(tmp_path):
    from PIL import Image

    rng = np.random.RandomState(2)
    grey = rng.randint(0, 256, (8, 8)).astype(np.uint8)
    rgb = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    only_grey = load_images([tmp_path / "a.png"])
    assert only_grey.shape == (1, 8, 8)  # "auto" keeps grey images grey
    np.testing.assert_array_equal(only_grey[0], grey)
    both = load_images(tmp_path)  # a colour image among them: all RGB
    assert both.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(both[0], np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_array_equal(both[1], rgb)
    # "L" on colour: ITU-R 601-2 luma, L = (299 R + 587 G + 114 B) / 1000, which
    # Pillow computes in fixed point: within 1 grey level of the exact value.
    luma = load_images(tmp_path, mode="L")[1].astype(float)
    exact = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - exact).max() <= 1.0
    np.testing.assert_array_equal(load_images(tmp_path, mode="RGB"), both)


def test_alpha_dropped_and_sixteen_bit_grey(tmp_path):
    from PIL import Image

    rgba = np.random.RandomState(3).randint(0, 256, (5, 6, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_images(tmp_path / "rgba.png")[0], rgba[..., :3])
    deep = (np.arange(30, dtype=np.uint16) * 2259).reshape(5, 6)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # 16-bit grey PNG
    # 0..65535 onto 0..255: round(v / 257), not Pillow's clipping at 255.
    np.testing.assert_array_equal(
        load_images(tmp_path / "deep.png")[0], np.round(deep / 257.0).astype(np.uint8)
    )


def test_exif_orientation_applied(tmp_path):
    from PIL import Image

    pixels = np.random.RandomState(4).randint(0, 256, (6, 10, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: shown rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    X = load_images(tmp_path / "turned.png")
    np.testing.assert_array_equal(X[0], np.rot90(pixels, k=-1))
    with Image.open(tmp_path / "turned.png") as img:
        img.load()
        before = np.asarray(img).copy()
        np.testing.assert_array_equal(load_images(img)[0], np.rot90(pixels, k=-1))
        np.testing.assert_array_equal(np.asarray(img), before)  # not mutated


def test_sources_paths_pil_arrays_and_order(image_files, tmp_path):
    from PIL import Image

    size = (10, 10)
    reference = {p: _pil_cover_crop(p, size, "RGB") for p in image_files}
    first, second = image_files[3], image_files[1]
    with Image.open(second) as img:
        img.load()
        pil_copy = img.copy()
    array = np.asarray(pil_copy).copy()
    array_before = array.copy()
    X, paths, failed = load_images(
        [str(first), pil_copy, array, first], size=size, return_paths=True
    )
    assert paths == [str(first), None, None, str(first)] and failed == []
    np.testing.assert_array_equal(X[0], reference[first])
    np.testing.assert_array_equal(X[1], reference[second])
    np.testing.assert_array_equal(X[2], reference[second])
    np.testing.assert_array_equal(X[3], reference[first])
    np.testing.assert_array_equal(array, array_before)
    assert pil_copy.size == (40, 30)
    # a folder is read in sorted order; a 1-D array of paths is a list
    X, paths, _ = load_images(tmp_path, size=size, return_paths=True)
    assert paths == sorted(str(p) for p in image_files)
    X2 = load_images(np.array(paths), size=size)
    np.testing.assert_array_equal(X, X2)
    import pandas as pd  # a test dependency

    np.testing.assert_array_equal(load_images(pd.Series(paths), size=size), X)
    # arrays of every accepted shape
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for a in (grey, grey[..., None]):
        np.testing.assert_array_equal(load_images([a])[0], grey)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert load_images([rgba]).shape == (1, 3, 4, 3)


def test_folder_listing_recursive_and_hidden(tmp_path):
    from PIL import Image

    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "c").mkdir()
    for rel in ["b.PNG", "a.jpg", "c/c.png", "sub/deeper/d.webp", ".e.png",
                ".hidden/f.png", "notes.txt"]:  # fmt: skip
        Image.new("L", (4, 4)).save(tmp_path / rel, format="PNG")
    top = [tmp_path / "a.jpg", tmp_path / "b.PNG"]
    assert list_image_files(tmp_path) == [str(p) for p in top]
    deep = [*top, tmp_path / "c/c.png", tmp_path / "sub/deeper/d.webp"]
    assert list_image_files(tmp_path, recursive=True) == sorted(str(p) for p in deep)
    _, paths, _ = load_images(tmp_path, recursive=True, return_paths=True)
    assert paths == sorted(str(p) for p in deep)
    empty = tmp_path / "c" / "none"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"No image files .* found in the folder"):
        load_images(empty)
    with pytest.raises(ValueError, match=r"subfolders were not searched: pass recur"):
        load_images(tmp_path / "sub" / "deeper" / "..")  # only deeper/ is below
    with pytest.raises(NotADirectoryError, match="'folder' parameter"):
        list_image_files(tmp_path / "a.jpg")


@pytest.fixture
def broken_files(tmp_path):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    not_image = tmp_path / "text.jpg"
    not_image.write_text("not an image")
    return good, truncated, not_image, tmp_path / "missing.png"


def test_unreadable_files_raise_or_are_skipped(broken_files):
    good, truncated, not_image, missing = broken_files
    for bad in (truncated, not_image):
        with pytest.raises(OSError, match=f"'{bad}'.*errors='skip'"):
            load_images([good, bad])
    with pytest.raises(FileNotFoundError, match=f"'{missing}'"):
        load_images([good, missing])
    for mode in ("auto", "RGB"):  # "auto" opens headers first: same outcome
        X, paths, failed = load_images(
            [truncated, good, missing, not_image, good],
            errors="skip",
            mode=mode,
            return_paths=True,
        )
        assert X.shape == (2, 8, 8, 3) and (X == [1, 2, 3]).all()
        assert paths == [str(good), str(good)]
        assert [p for p, _ in failed] == [str(truncated), str(missing), str(not_image)]
        assert "FileNotFoundError" in failed[1][1]
    with pytest.raises(ValueError, match="None of the 2 image files could be read"):
        load_images([truncated, missing], errors="skip")


def test_different_sizes_need_size(image_files):
    with pytest.raises(ValueError, match=r"different sizes .*28x28 .*size=\(height"):
        load_images(image_files)


@pytest.mark.parametrize(
    "source, kwargs, error, match",
    [
        ("nowhere/x.png", {}, FileNotFoundError, "neither a file nor a folder"),
        (np.zeros((2, 4, 4), np.uint8), {}, TypeError, r"list\(X\)"),
        (7, {}, TypeError, "'source' parameter of load_images"),
        (torch.zeros(2, 4, 4), {}, TypeError, "Got Tensor instead"),
        ([], {}, ValueError, "empty list"),
        ([3], {}, TypeError, "Item 0 of the 'source'"),
        ([np.zeros((4, 4))], {}, TypeError, "dtype uint8"),
        ([np.zeros((4, 4, 2), np.uint8)], {}, ValueError, r"\(H, W, 3\)"),
        ([np.zeros((0, 4), np.uint8)], {}, ValueError, "empty"),
        ([np.zeros((4, 4), np.uint8)], {"mode": "rgb"}, ValueError, "'mode' param"),
        ([np.zeros((4, 4), np.uint8)], {"errors": "x"}, ValueError, "'errors' param"),
        ([np.zeros((4, 4), np.uint8)], {"size": 0}, ValueError, "'size' parameter"),
        ([np.zeros((4, 4), np.uint8)], {"size": (3,)}, ValueError, "'size' param"),
        ([np.zeros((4, 4), np.uint8)], {"size": True}, ValueError, "'size' param"),
        ([np.zeros((4, 4), np.uint8)], {"recursive": 1}, TypeError, "'recursive'"),
    ],
)
def test_load_images_bad_input(source, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_images(source, **kwargs)


def test_without_pillow_names_the_extra(monkeypatch, tmp_path):
    for name in ("PIL", "PIL.Image", "PIL.ImageOps"):
        monkeypatch.setitem(sys.modules, name, None)
    for call in (load_images, iter_images):
        with pytest.raises(ImportError, match=r'pip install "sklearn-ood\[images\]"'):
            call(tmp_path)
    assert list_image_files(tmp_path) == []  # listing needs no Pillow


def test_iter_images_batches_equal_load_images(image_files, broken_files):
    _, truncated, _, missing = broken_files
    sources = [*image_files[:2], truncated, *image_files[2:], missing]
    batches = list(iter_images(sources, batch_size=3, size=12, errors="skip"))
    assert [len(b.paths) + len(b.failed) for b in batches] == [3, 3, 1]
    assert [p for b in batches for p, _ in b.failed] == [str(truncated), str(missing)]
    assert batches[2].images is None
    X, paths, _ = load_images(sources, size=12, errors="skip", return_paths=True)
    np.testing.assert_array_equal(
        np.concatenate([b.images for b in batches if b.images is not None]), X
    )
    assert [p for b in batches for p in b.paths] == paths
    # arguments are checked when iter_images is called, before any file is read
    with pytest.raises(ValueError, match="'batch_size' parameter of iter_images"):
        iter_images(sources, batch_size=0)
    # without size, a later image of another size stops the iteration
    batches = iter_images(image_files, batch_size=1)
    next(batches)
    with pytest.raises(ValueError, match=r"28x28 .*first image.* 30x40 .*later"):
        next(batches)
