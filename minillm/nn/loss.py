"""Losses: softmax cross-entropy, the objective of every model here.

For a language model the rows are positions and the targets the next tokens
(see `minillm.objectives`); for a classifier the rows are examples.
"""

from minillm.backend import xp


def cross_entropy_forward(logits, targets, ignore_index=-100):
    """Mean negative log-likelihood of the targets over the counted rows.

        loss = -(1 / |counted|) sum_{n counted} log softmax(logits_n)[y_n]

    logits: (N, V), targets: (N,) ints; rows whose target is ignore_index
    are not counted. With no counted row the loss is 0 (not NaN).
    """
    keep = targets != ignore_index  # (N,)
    safe_targets = xp.where(keep, targets, 0)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_z = xp.log(xp.exp(shifted).sum(axis=-1))  # (N,)
    logp_target = xp.take_along_axis(shifted, safe_targets[:, None], axis=-1)[:, 0] - log_z
    count = max(int(keep.sum()), 1)
    loss = -(logp_target * keep).sum() / count
    return loss, (shifted, log_z, safe_targets, keep, count)


def cross_entropy_backward(dloss, cache):
    """dlogits_n = (softmax(logits_n) - onehot(y_n)) / |counted|, zero for ignored rows."""
    shifted, log_z, safe_targets, keep, count = cache
    dlogits = xp.exp(shifted - log_z[:, None])  # softmax, (N, V)
    dlogits[xp.arange(len(safe_targets)), safe_targets] -= 1.0
    dlogits *= (keep * (dloss / count)).astype(dlogits.dtype)[:, None]
    return dlogits
