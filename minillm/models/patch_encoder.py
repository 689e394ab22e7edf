"""A Transformer over patches (Dosovitskiy et al. 2021's ViT): images, or spectrograms cut in time.

    h_0 = [cls; P(x) W_E^T + b_E] + W_pos[0 .. N]     patch tokens after a learned [CLS], learned positions
    h_L = BertEncoder(h_0)                            the project's post-LN Transformer layers (models/bert.py)
    pooled = h_L[:, 0]                                the [CLS] position stands for the whole input

P cuts an image (B, H, W) into p x p squares, or a log-mel spectrogram (B, T, n_mels) into p frames
at a time (a strided 1-D convolution over time, nn/patches.py). Names follow Hugging Face's ViT
(`embeddings.cls_token`, `embeddings.patch_embeddings.projection`, `encoder.layer.0...`).
"""

from minillm.backend import xp
from minillm.models.bert import BertConfig, BertEncoder
from minillm.nn.layers import Embedding, Module, Parameter, normal_init
from minillm.nn.patches import PatchEmbedding


def patch_grid(kind, input_size, patch_size):
    """(number of patches, values per patch) of an input of input_size = (H, W) or (T, n_mels)."""
    a, b = input_size
    if kind == "image":
        return (a // patch_size) * (b // patch_size), patch_size * patch_size
    return a // patch_size, patch_size * b


class PatchEmbeddings(Module):
    """`embeddings`: [CLS] + projected patches, plus a learned position for each of the N + 1 tokens."""

    def __init__(self, kind, input_size, patch_size, cfg, rng, dtype):
        n_patches, patch_dim = patch_grid(kind, input_size, patch_size)
        std = cfg.initializer_range
        self.patch_embeddings = PatchEmbedding(kind, patch_size, patch_dim, cfg.hidden_size, rng, std=std, dtype=dtype)
        self.cls_token = Parameter(normal_init((1, 1, cfg.hidden_size), std, rng, dtype))
        self.position_embeddings = Embedding(n_patches + 1, cfg.hidden_size, rng, std=std, dtype=dtype)

    def forward(self, x):  # (B, H, W) or (B, T, F) -> (B, N + 1, C)
        patches = self.patch_embeddings(x)  # (B, N, C)
        cls = xp.broadcast_to(self.cls_token.data, (len(x), 1, patches.shape[2]))
        h = xp.concatenate([cls, patches], axis=1)
        return h + self.position_embeddings(xp.arange(h.shape[1])[None, :])

    def backward(self, dh):
        self.position_embeddings.backward(dh.sum(axis=0, keepdims=True))  # one position row for every input
        self.cls_token.accumulate(dh[:, :1].sum(axis=0, keepdims=True))
        return self.patch_embeddings.backward(dh[:, 1:])


class PatchEncoder(Module):
    """Patch embeddings, then BERT's encoder layers; forward returns every token's state."""

    def __init__(self, kind, input_size, patch_size, cfg, rng, dropout_source, dtype):
        if not isinstance(cfg, BertConfig):
            raise TypeError("PatchEncoder's layers are BERT's: give it a BertConfig")
        self.embeddings = PatchEmbeddings(kind, input_size, patch_size, cfg, rng, dtype)
        self.encoder = BertEncoder(cfg, rng, dropout_source, dtype)

    def forward(self, x):  # -> (B, N + 1, C), position 0 the [CLS] token
        return self.encoder(self.embeddings(x), None)

    def backward(self, dh):
        return self.embeddings.backward(self.encoder.backward(dh))
