"""Tests of sklearn_ood.images: image validation and pre-processing."""

import numpy as np
import pytest
import torch

from sklearn_ood.images import (
    center_crop,
    check_images,
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
