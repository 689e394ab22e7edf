"""Patch embedding: the reshapes put each value in its place; gradients against finite differences."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_host, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck_module
from minillm.nn.patches import PatchEmbedding, image_patches_forward, time_patches_forward

seeds = st.integers(0, 2**31 - 1)


def test_image_patches_are_squares_row_by_row():
    x = xp.arange(16.0).reshape(1, 4, 4)
    patches, _ = image_patches_forward(x, 2)
    assert to_host(patches).tolist() == [[[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]]
    frames, _ = time_patches_forward(xp.arange(12.0).reshape(1, 4, 3), 2)
    assert to_host(frames).tolist() == [[[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]]
    with pytest.raises(ValueError, match="5x4 pixels does not divide into 2x2 patches"):
        image_patches_forward(xp.zeros((1, 5, 4)), 2)
    with pytest.raises(ValueError, match="5 frames do not divide into patches of 2"):
        time_patches_forward(xp.zeros((1, 5, 3)), 2)


@given(seeds, st.integers(1, 3), st.integers(1, 2), st.integers(1, 3), st.integers(1, 4))
def test_patch_embedding_gradients(seed, p, rows, cols, dim):
    rng = xp.random.default_rng(seed)
    image = PatchEmbedding("image", p, p * p, dim, rng, std=1.0, dtype="float64")
    image.projection.bias.data = rng.standard_normal(dim)
    x = rng.standard_normal((2, rows * p, cols * p))
    assert image(x).shape == (2, rows * cols, dim)
    assert_gradients_close(gradcheck_module(image, x), ["input0", "projection.weight", "projection.bias"])
    speech = PatchEmbedding("time", p, p * cols, dim, rng, std=1.0, dtype="float64")
    assert_gradients_close(gradcheck_module(speech, rng.standard_normal((2, rows * p, cols))),
                           ["input0", "projection.weight", "projection.bias"])
