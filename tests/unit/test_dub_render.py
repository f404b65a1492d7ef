"""deadlib.dub.render: the paste mask and the enlarging of the render before the paste."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deadlib.core.config import ConfigError
from deadlib.data.crop import crop_frame, crop_transform
from deadlib.dub.dubbing import dub_settings
from deadlib.dub.render import UPSCALE_KERNELS, composite, enlarge, paste_mask


def test_paste_mask_grows_the_mask_by_a_square():
    rng = np.random.default_rng(0)
    mask = rng.random((3, 20, 20)) > 0.97                             # scattered single pixels
    grown = paste_mask(mask, 2)
    square = F.max_pool2d(torch.from_numpy(mask.astype(np.float32))[:, None], 5, stride=1, padding=2)[:, 0].numpy()
    assert np.array_equal(grown, square) and grown.sum() > mask.sum()
    assert np.array_equal(paste_mask(mask, 0), mask.astype(np.float32))



# ----------------------------------------------------------------------------- enlarging the render

BLEND = {"method": "laplacian", "feather": 0.03, "levels": 3, "colour_match": True}


def _face_frame(size=400):
    """A smooth but detailed (H, W, 3) uint8 frame: sinusoids of a few periods (no aliasing at 128 px)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    channels = [128 + 90 * np.sin(x / (7 + 3 * c)) * np.cos(y / (9 + 2 * c)) for c in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def _crop_of(frame, side_px=320.0, resolution=128):
    affine = crop_transform(np.array([[200.0, 210.0]]), np.array([side_px]), resolution)[0]   # (2, 3)
    return crop_frame(frame, affine, resolution), affine


def test_linear_and_a_crop_that_is_not_magnified_are_left_alone():
    frame = _face_frame()
    crop, affine = _crop_of(frame)
    mask = np.ones(crop.shape[:2], np.float32)
    same = enlarge(crop, mask, affine, "linear")
    assert same[0] is crop and same[1] is mask and same[2] is affine
    small, small_affine = _crop_of(frame, side_px=100.0)                          # the face smaller than the crop
    assert enlarge(small, mask, small_affine, "lanczos")[0] is small


def test_a_sharper_kernel_puts_the_crop_back_closer_to_the_native_frame():
    """The crop of a native frame pasted back into it: cubic and Lanczos resizing before the paste land
    closer to the truth than the paste's own bilinear magnification (2.5x here)."""
    frame = _face_frame()
    crop, affine = _crop_of(frame)
    mask = np.zeros(crop.shape[:2], np.float32)
    mask[32:112, 24:104] = 1.0
    big, big_mask, big_affine = enlarge(crop, mask, affine, "cubic")
    assert big.shape == (320, 320, 3) and big.dtype == np.uint8 and big_mask.shape == (320, 320)
    assert np.allclose(big_affine, affine * 2.5)
    inside = np.zeros(frame.shape[:2], bool)
    inside[150:260, 150:250] = True                                              # well inside the pasted mask
    errors = {}
    for kernel in UPSCALE_KERNELS:
        # colour matching off: on a pure sinusoid its std gain undoes the blur's loss of contrast, which
        # would measure the colour match, not the kernel (the real frames: benchmarks/compare_upscale.py)
        out = composite(frame, crop, affine, mask, {**BLEND, "colour_match": False, "upscale": kernel})
        errors[kernel] = np.abs(out.astype(np.float64) - frame)[inside].mean()
    assert errors["cubic"] < 0.9 * errors["linear"] and errors["lanczos"] < 0.9 * errors["linear"]


def test_the_dub_settings_refuse_an_unknown_kernel():
    assert dub_settings("smoke")["blend"]["upscale"] in UPSCALE_KERNELS
    with pytest.raises(ConfigError, match="dub.blend.upscale"):
        dub_settings("smoke", overrides={"blend": {"upscale": "nearest"}})


def test_the_dub_settings_refuse_an_unknown_adapt_now_precision():
    assert dub_settings("smoke")["adapt"]["train_dtype"] == "float32"        # opt-in: float32 unless asked
    assert dub_settings("smoke", overrides={"adapt": {"train_dtype": "bfloat16"}})["adapt"]["train_dtype"] == "bfloat16"
    with pytest.raises(ConfigError, match="dub.adapt.train_dtype"):
        dub_settings("smoke", overrides={"adapt": {"train_dtype": "float16"}})
