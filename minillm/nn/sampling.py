"""Choosing the next token from a model's logits: temperature, top-k, greedy."""

from minillm.backend import xp
from minillm.nn.functional import softmax_forward


def sample_next(logits, temperature=1.0, top_k=None, rng=None):
    """logits (B, V) -> next ids (B, 1).

    p = softmax(logits / temperature), restricted to the top_k largest logits;
    temperature 0 is greedy (argmax). Sampling inverts the CDF with one uniform
    draw a row, which works the same on NumPy and CuPy.
    """
    if temperature == 0:
        return logits.argmax(axis=-1)[:, None]
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = xp.sort(logits, axis=-1)[:, -top_k][:, None]  # (B, 1) the k-th largest
        logits = xp.where(logits < kth, -xp.inf, logits)
    p, _ = softmax_forward(logits)
    u = rng.random((logits.shape[0], 1))
    ids = (p.cumsum(axis=-1) < u).sum(axis=-1)  # first index whose CDF reaches u
    return xp.minimum(ids, logits.shape[-1] - 1)[:, None]
