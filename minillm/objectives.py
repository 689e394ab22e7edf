"""Pretraining objectives: what a model is asked to predict, and its loss.

Autoregressive (GPT): predict every next token from the ones before it,

    L_AR = -(1 / T) sum_t log p(x_{t+1} | x_1 .. x_t)

so the targets are the inputs shifted left by one, and the causal mask keeps
position t from seeing x_{t+1}.
"""

from minillm.backend import np, to_device
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward


def ar_blocks(ids, batch_size, block_size, rng):
    """B random windows of a token stream -> inputs x and targets y = x shifted by one.

    ids: 1-D host array; returns device arrays x, y, each (B, T).
    """
    if len(ids) <= block_size:
        raise ValueError(f"token stream of {len(ids)} ids is too short for block_size {block_size}")
    starts = rng.integers(0, len(ids) - block_size, batch_size)  # (B,)
    windows = ids[starts[:, None] + np.arange(block_size + 1)]  # (B, T + 1)
    return to_device(windows[:, :-1].astype(np.int64)), to_device(windows[:, 1:].astype(np.int64))


def ar_loss(logits, targets, ignore_index=-100):
    """L_AR for logits (B, T, V) and targets (B, T); returns (loss, cache for ar_loss_backward)."""
    B, T, V = logits.shape
    loss, cache = cross_entropy_forward(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index)
    return loss, (cache, logits.shape)


def ar_loss_backward(dloss, cache):
    """dL/dlogits (B, T, V)."""
    ce_cache, shape = cache
    return cross_entropy_backward(dloss, ce_cache).reshape(shape)
