"""Tests for sklearn_ood.nn._transforms against NumPy / SciPy references."""

import itertools
import pickle

import numpy as np
import pytest
import torch
from scipy import ndimage

from sklearn_ood.nn._transforms import PRESETS, GeometricTransformations


def numpy_reference(img_hwc, flip, tx, ty, k):
    """The authors' pipeline, with the Keras shift as pad(symmetric) + crop."""
    out = np.fliplr(img_hwc) if flip else img_hwc
    if tx or ty:
        h, w = out.shape[:2]
        p = max(abs(tx), abs(ty))
        padded = np.pad(out, ((p, p), (p, p), (0, 0)), mode="symmetric")
        out = padded[p + tx : p + tx + h, p + ty : p + ty + w]
    if k:
        out = np.rot90(out, k)
    return np.ascontiguousarray(out)


def to_nchw(imgs_nhwc):
    return torch.from_numpy(np.ascontiguousarray(imgs_nhwc.transpose(0, 3, 1, 2)))


def to_nhwc(x_nchw):
    return x_nchw.detach().cpu().numpy().transpose(0, 2, 3, 1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_all_72_match_numpy_reference(rng):
    gt = GeometricTransformations()
    imgs = rng.standard_normal((3, 32, 32, 3)).astype(np.float32)
    x = to_nchw(imgs)
    assert gt.n_transforms == 72 == len(gt)
    for t, (flip, tx, ty, k) in enumerate(gt.params):
        out = to_nhwc(gt.apply(x, t))
        ref = np.stack([numpy_reference(im, flip, tx, ty, k) for im in imgs])
        np.testing.assert_array_equal(out, ref, err_msg=f"t={t}")


@pytest.mark.parametrize("shape", [(12, 20), (20, 12), (9, 9)])
def test_flips_shifts_half_turns_non_square(rng, shape):
    h, w = shape
    gt = GeometricTransformations(
        flips=(False, True), shifts=(0, -5, 3, 9), rotations=(0, 2)
    )
    imgs = rng.integers(0, 255, size=(2, h, w, 2)).astype(np.uint8)
    x = to_nchw(imgs)
    for t, p in enumerate(gt.params):
        ref = np.stack([numpy_reference(im, *p) for im in imgs])
        np.testing.assert_array_equal(to_nhwc(gt.apply(x, t)), ref)


@pytest.mark.parametrize(
    "shape, tx, ty",
    [((32, 32), 8, -8), ((32, 32), -8, 0), ((32, 32), 0, 8), ((10, 14), 3, -7)],
)
def test_shift_matches_scipy_affine_reflect(rng, shape, tx, ty):
    # The authors' Keras 2.2 path: scipy affine_transform, identity matrix,
    # offset (tx, ty) in (row, col), spline order 1, mode 'reflect'.
    img = rng.standard_normal((*shape, 3))
    ref = ndimage.affine_transform(
        img, np.eye(3), offset=(tx, ty, 0), order=1, mode="reflect"
    )
    gt = GeometricTransformations(transformations=[(False, tx, ty, 0)])
    out = to_nhwc(gt.apply(to_nchw(img[None]), 0))[0]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_rotation_direction_matches_numpy_and_torch(rng):
    gt = GeometricTransformations.flip_rot8()
    img = rng.standard_normal((1, 5, 5, 1))
    x = to_nchw(img)
    for k in range(4):
        np.testing.assert_array_equal(to_nhwc(gt.apply(x, k))[0], np.rot90(img[0], k))
        assert torch.equal(gt.apply(x, k), torch.rot90(x, k, dims=(2, 3)))
    # One quarter turn is counter-clockwise: the top-right corner goes top-left.
    corner = torch.zeros(1, 1, 3, 3)
    corner[0, 0, 0, 2] = 1.0
    assert gt.apply(corner, 1)[0, 0, 0, 0] == 1.0


def test_enumeration_order_and_index_formula():
    shifts = (0, -8, 8)
    gt = GeometricTransformations()
    expected = list(itertools.product((False, True), shifts, shifts, range(4)))
    assert gt.params == expected
    for f, i, j, k in itertools.product(range(2), range(3), range(3), range(4)):
        assert gt.params[36 * f + 12 * i + 4 * j + k] == (
            bool(f),
            shifts[i],
            shifts[j],
            k,
        )
    assert gt.params[0] == (False, 0, 0, 0)


def test_identity_at_index_0(rng):
    x = torch.from_numpy(rng.standard_normal((4, 3, 16, 16)))
    for gt in (GeometricTransformations(), GeometricTransformations.flip_rot8()):
        assert torch.equal(gt.apply(x, 0), x)


def test_per_sample_indices_equal_single_applications(rng):
    gt = GeometricTransformations()
    x = torch.from_numpy(rng.standard_normal((20, 3, 32, 32)).astype(np.float32))
    t = torch.from_numpy(rng.integers(0, 72, size=20))
    out = gt.apply(x, t)
    for i in range(20):
        assert torch.equal(out[i : i + 1], gt.apply(x[i : i + 1], int(t[i])))
    # NumPy arrays and lists are accepted too, with the same result.
    assert torch.equal(gt.apply(x, t.numpy()), out)
    assert torch.equal(gt.apply(x, t.tolist()), out)
    assert torch.equal(gt(x, t), out)
    # A scalar index as a 0-d tensor or NumPy integer applies to the batch.
    assert torch.equal(gt.apply(x, torch.tensor(5)), gt.apply(x, 5))
    assert torch.equal(gt.apply(x, np.int64(5)), gt.apply(x, 5))


def test_apply_all_stacks_every_transformation(rng):
    gt = GeometricTransformations()
    x = torch.from_numpy(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    out = gt.apply_all(x)
    assert out.shape == (72, 2, 3, 32, 32) and out.is_contiguous()
    for t in range(72):
        assert torch.equal(out[t], gt.apply(x, t))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_dtype_preserved_and_input_untouched(rng, dtype):
    gt = GeometricTransformations()
    x = torch.from_numpy(rng.integers(0, 100, size=(3, 2, 32, 32))).to(dtype)
    x_copy = x.clone()
    t = torch.tensor([5, 40, 71])
    for out in (gt.apply(x, 7), gt.apply(x, t), gt.apply_all(x)):
        assert out.dtype == dtype and out.device == x.device
    assert torch.equal(x, x_copy)


def test_non_contiguous_channels_last_input(rng):
    gt = GeometricTransformations()
    x = torch.from_numpy(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    x_cl = x.to(memory_format=torch.channels_last)
    t = torch.tensor([17, 62])
    assert torch.equal(gt.apply(x_cl, t), gt.apply(x, t))


def test_gradient_flows_through_apply():
    gt = GeometricTransformations(transformations=[(True, 0, 0, 1), (False, 2, 0, 0)])
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    gt.apply(x, 0).sum().backward()
    # A flip + rotation is a permutation: every pixel is used once.
    assert torch.equal(x.grad, torch.ones_like(x))
    x.grad = None
    gt.apply(x, 1).sum().backward()
    # Shift by 2 rows of a 4-row image: out rows come from in rows 2, 3, 3, 2.
    expected = torch.tensor([0.0, 0.0, 2.0, 2.0])[:, None].expand(4, 4)
    assert torch.equal(x.grad[0, 0], expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_preserved(rng):
    gt = GeometricTransformations()
    x = torch.from_numpy(rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
    t = torch.tensor([0, 13, 50, 71])
    out = gt.apply(x.cuda(), t.cuda())
    assert out.is_cuda
    assert torch.equal(out.cpu(), gt.apply(x, t))
    assert torch.equal(gt.apply_all(x.cuda()).cpu(), gt.apply_all(x))


def test_presets():
    assert GeometricTransformations.from_preset().params == (
        GeometricTransformations().params
    )
    g16 = GeometricTransformations.from_preset("geometric72", shift=16)
    assert g16.params == list(
        itertools.product((False, True), (0, -16, 16), (0, -16, 16), range(4))
    )
    assert GeometricTransformations.geometric72(16).params == g16.params
    simple = GeometricTransformations.from_preset("flip_rot8")
    assert simple.params == [
        (f, 0, 0, k) for f, k in itertools.product((False, True), range(4))
    ]
    assert GeometricTransformations.from_preset("intuition_flip").params == [
        (False, 0, 0, 0),
        (True, 0, 0, 0),
    ]
    assert GeometricTransformations.from_preset("intuition_shift", shift=4).params == [
        (False, 0, 0, 0),
        (False, 0, 4, 0),
    ]
    assert set(PRESETS) == {
        "geometric72",
        "flip_rot8",
        "intuition_flip",
        "intuition_shift",
    }


def test_explicit_transformations_keep_order(rng):
    params = [(True, 3, -2, 2), (False, 0, 0, 0), (False, -1, 4, 3)]
    gt = GeometricTransformations(transformations=params)
    assert gt.params == params
    img = rng.standard_normal((1, 8, 8, 2))
    for t, p in enumerate(params):
        np.testing.assert_array_equal(
            to_nhwc(gt.apply(to_nchw(img), t))[0], numpy_reference(img[0], *p)
        )


def test_params_is_a_copy():
    gt = GeometricTransformations()
    gt.params.append((False, 1, 1, 1))
    assert gt.n_transforms == 72


def test_pickle_roundtrip(rng):
    gt = GeometricTransformations()
    x = torch.from_numpy(rng.standard_normal((2, 1, 8, 8)))
    before = gt.apply(x, torch.tensor([3, 70]))
    gt2 = pickle.loads(pickle.dumps(gt))
    assert gt2.params == gt.params
    assert torch.equal(gt2.apply(x, torch.tensor([3, 70])), before)


def test_shift_equal_to_image_size_is_allowed_larger_raises(rng):
    img = rng.standard_normal((1, 6, 6, 1))
    gt = GeometricTransformations(transformations=[(False, 6, -6, 0)])
    np.testing.assert_array_equal(
        to_nhwc(gt.apply(to_nchw(img), 0))[0], numpy_reference(img[0], False, 6, -6, 0)
    )
    with pytest.raises(ValueError, match="shifts by more than the image size"):
        GeometricTransformations().apply(torch.zeros(1, 1, 7, 7), 0)
    with pytest.raises(ValueError, match=r"ty=5.*image size 10x4"):
        GeometricTransformations(shifts=(0, 5), rotations=(0,)).apply(
            torch.zeros(1, 1, 10, 4), 0
        )


def test_odd_rotation_non_square_raises():
    with pytest.raises(ValueError, match="need square images"):
        GeometricTransformations(shifts=(0,)).apply(torch.zeros(1, 1, 8, 10), 0)
    # Even rotations only: fine.
    out = GeometricTransformations(shifts=(0,), rotations=(0, 2)).apply(
        torch.zeros(1, 1, 8, 10), 1
    )
    assert out.shape == (1, 1, 8, 10)


def test_bad_indices_raise():
    gt = GeometricTransformations.flip_rot8()
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        gt.apply(x, 8)
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        gt.apply(x, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        gt.apply(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        gt.apply(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer"):
        gt.apply(x, np.array([True, False]))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        gt.apply(np.zeros((2, 1, 4, 4)), 0)
    with pytest.raises(ValueError, match="4-d"):
        gt.apply(torch.zeros(1, 4, 4), 0)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"rotations": (0, 4)}, ValueError, "rotations"),
        ({"shifts": (0, 1.5)}, ValueError, "shifts"),
        ({"shifts": ()}, ValueError, "non-empty"),
        ({"shifts": 8}, TypeError, "shifts"),
        ({"flips": (0, 1)}, ValueError, "flips"),
        ({"flips": True}, TypeError, "flips"),
        ({"transformations": [(False, 0, 0)]}, ValueError, "transformations"),
        ({"transformations": [(False, 0, 0, 5)]}, ValueError, "transformations"),
        ({"transformations": []}, ValueError, "empty"),
        (
            {"transformations": [(False, 0, 0, 0)], "shifts": (0,)},
            ValueError,
            "cannot be combined",
        ),
    ],
)
def test_bad_parameters_raise(kwargs, err, match):
    with pytest.raises(err, match=match):
        GeometricTransformations(**kwargs)


def test_bad_preset_raises():
    with pytest.raises(ValueError, match="must be one of"):
        GeometricTransformations.from_preset("rot4")
    with pytest.raises(ValueError, match="takes no 'shift'"):
        GeometricTransformations.from_preset("flip_rot8", shift=3)
    with pytest.raises(TypeError, match="integer"):
        GeometricTransformations.geometric72(8.0)


def test_source_indices_cached_and_shaped():
    gt = GeometricTransformations()
    idx = gt.source_indices(32, 32)
    assert idx.shape == (72, 1024) and idx.dtype == torch.int64
    assert gt.source_indices(32, 32) is idx
    # Every map is a valid flat index; index 0 is the identity permutation.
    assert int(idx.min()) >= 0 and int(idx.max()) < 1024
    assert torch.equal(idx[0], torch.arange(1024))
