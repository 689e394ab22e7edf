"""Losses: softmax cross-entropy, the objective of every model here; distillation; the L2 penalty.

For a language model the rows are positions and the targets the next tokens
(see `minillm.tasks.causal_lm`); for a classifier the rows are examples.
"""

from minillm.backend import to_host, xp
from minillm.nn.functional import log_softmax, sum_last

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


def distillation_forward(student_logits, teacher_logits, temperature):
    """Hinton et al. (2015): the student matches the teacher's temperature-softened probabilities.

        p = softmax(t / T),  q = softmax(s / T)
        loss = T^2 (1 / N) sum_n KL(p_n || q_n) = T^2 (1 / N) sum_n sum_k p_nk (log p_nk - log q_nk)

    T > 1 raises the small probabilities, which carry what the teacher knows about how the wrong
    classes resemble the right one; the T^2 keeps the gradient's size independent of T (it scales
    as 1 / T^2 otherwise), so the loss mixes with the hard-label cross-entropy at any T.
    student_logits, teacher_logits: (N, K).
    """
    log_p = log_softmax(teacher_logits / temperature)  # (N, K)
    log_q = log_softmax(student_logits / temperature)  # (N, K)
    p = xp.exp(log_p)
    n = student_logits.shape[0]
    loss = temperature ** 2 * (p * (log_p - log_q)).sum() / n
    return loss, (p, xp.exp(log_q), temperature, n)


def distillation_backward(dloss, cache):
    """dloss/ds_nk = T^2 (q_nk - p_nk) / (T N) = T (q_nk - p_nk) / N  (the teacher's logits get none)."""
    p, q, temperature, n = cache
    return (q - p) * (dloss * temperature / n)


def l2_penalty_forward(w, strength):
    """The ridge penalty of a weight array: loss = (strength / 2) sum_ij w_ij^2."""
    return 0.5 * strength * (w * w).sum(), (w, strength)


def l2_penalty_backward(dloss, cache):
    """dloss/dw = strength w."""
    w, strength = cache
    return (dloss * strength) * w
