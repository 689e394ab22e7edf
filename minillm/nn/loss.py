"""Losses: softmax cross-entropy, the objective of every model here.

For a language model the rows are positions and the targets the next tokens
(see `minillm.tasks.causal_lm`); for a classifier the rows are examples.
"""

from minillm.backend import to_host, xp
from minillm.nn.functional import sum_last

IGNORE_INDEX = -100  # the target of rows that are not scored (padding, unmasked tokens), as PyTorch


def cross_entropy_forward(logits, targets, ignore_index=IGNORE_INDEX):
    """Mean negative log-likelihood of the targets over the counted rows.

        loss = -(1 / |counted|) sum_{n counted} log softmax(logits_n)[y_n]

    logits: (N, V), targets: (N,) ints; rows whose target is ignore_index
    are not counted. With no counted row the loss is 0 (not NaN).
    """
    keep = targets != ignore_index  # (N,)
    safe_targets = xp.where(keep, targets, 0)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # the largest is 0: exp cannot overflow
    logit_target = xp.take_along_axis(shifted, safe_targets[:, None], axis=-1)[:, 0]  # (N,)
    probs = xp.exp(shifted, out=shifted)  # softmax times z: kept for backward, which needs no exp of its own
    z = sum_last(probs)[:, 0]  # (N,)
    logp_target = logit_target - xp.log(z)
    count = max(int(to_host(keep.sum())), 1)  # the backward's divisor, on the host
    loss = -(logp_target * keep).sum() / count
    return loss, (probs, z, safe_targets, keep, count)


def cross_entropy_backward(dloss, cache):
    """dlogits_n = (softmax(logits_n) - onehot(y_n)) / |counted|, zero for ignored rows."""
    probs, z, safe_targets, keep, count = cache
    row_scale = (keep * (dloss / count)).astype(probs.dtype)  # (N,)
    dlogits = probs * (row_scale / z)[:, None]  # softmax(logits_n) * row_scale_n, (N, V)
    dlogits[xp.arange(len(safe_targets)), safe_targets] -= row_scale
    return dlogits
