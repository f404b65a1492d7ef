"""deadlib.dub.render: the paste mask."""

import numpy as np
import torch
import torch.nn.functional as F

from deadlib.dub.render import paste_mask


def test_paste_mask_grows_the_mask_by_a_square():
    rng = np.random.default_rng(0)
    mask = rng.random((3, 20, 20)) > 0.97                             # scattered single pixels
    grown = paste_mask(mask, 2)
    square = F.max_pool2d(torch.from_numpy(mask.astype(np.float32))[:, None], 5, stride=1, padding=2)[:, 0].numpy()
    assert np.array_equal(grown, square) and grown.sum() > mask.sum()
    assert np.array_equal(paste_mask(mask, 0), mask.astype(np.float32))

