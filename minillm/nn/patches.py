"""Patches: an image or a spectrogram cut into tokens, then one Linear layer (ViT's patch embedding).

    image  (B, H, W)  -> (B, (H/p)(W/p), p p)   non-overlapping p x p squares, row by row
    time   (B, T, F)  -> (B, T/p, p F)          p consecutive frames side by side

A linear map of each patch is exactly a convolution whose kernel equals its stride (ViT's Conv2d
with kernel = stride = p; for speech, a strided 1-D convolution over time with kernel = stride = p),
written here as the reshape plus a Linear. The reshapes move every value once, so their backward
is the inverse reshape.
"""

from minillm.nn.layers import Linear, Module


def image_patches_forward(x, p):
    """(B, H, W) -> (B, N, p p): patch n = (row r, column c) of the (H/p) x (W/p) grid, n = r (W/p) + c."""
    B, H, W = x.shape
    if H % p or W % p:
        raise ValueError(f"image of {H}x{W} pixels does not divide into {p}x{p} patches")
    grid = x.reshape(B, H // p, p, W // p, p).transpose(0, 1, 3, 2, 4)  # (B, H/p, W/p, p, p)
    return grid.reshape(B, (H // p) * (W // p), p * p), (x.shape, p)


def image_patches_backward(dout, cache):
    """The gradient of each pixel is that of its place in its patch."""
    (B, H, W), p = cache
    return dout.reshape(B, H // p, W // p, p, p).transpose(0, 1, 3, 2, 4).reshape(B, H, W)


def time_patches_forward(x, p):
    """(B, T, F) -> (B, T/p, p F): frames t p .. t p + p - 1 side by side, as one token."""
    B, T, F = x.shape
    if T % p:
        raise ValueError(f"{T} frames do not divide into patches of {p}")
    return x.reshape(B, T // p, p * F), x.shape


def time_patches_backward(dout, shape):
    return dout.reshape(shape)


class PatchEmbedding(Module):
    """`patch_embeddings`: cut into patches (kind "image" or "time"), then `projection` (patch -> C)."""

    def __init__(self, kind, patch_size, patch_dim, dim, rng, std=0.02, dtype="float32"):
        pairs = {"image": (image_patches_forward, image_patches_backward),
                 "time": (time_patches_forward, time_patches_backward)}
        if kind not in pairs:
            raise ValueError(f"patch kind must be 'image' or 'time', got {kind!r}")
        self._forward, self._backward = pairs[kind]
        self.patch_size = patch_size
        self.projection = Linear(patch_dim, dim, rng, std=std, dtype=dtype)

    def forward(self, x):  # (B, H, W) or (B, T, F) -> (B, N, C)
        patches, self.cache = self._forward(x, self.patch_size)
        return self.projection(patches)

    def backward(self, dout):
        return self._backward(self.projection.backward(dout), self.cache)
