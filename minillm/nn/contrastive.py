"""Contrastive objectives: L2 normalisation, CLIP's symmetric InfoNCE loss (Radford et al. 2021) and the
cosine-similarity regression of sentence pairs that SetFit tunes with (Tunstall et al. 2022).

    u_i = a_i / ||a_i||,  v_j = b_j / ||b_j||                     unit vectors
    s = exp(min(t, log 100))                                      the learned inverse temperature, t its log,
                                                                  clamped as CLIP clamps it (at 100)
    z_ij = s u_i . v_j                                            (N, M) logits
    L = 1/2 [ -1/N sum_i sum_j R_ij log softmax_j(z_i.)           each a chooses among the b's
              -1/M sum_j sum_i C_ij log softmax_i(z_.j) ]         each b chooses among the a's

R and C are the targets: with one positive per row (CLIP's batch of pairs) R = C = I. When
several b's fit one a (two images of a 7 in one batch, both captioned "seven"), P_ij = 1 marks
every fitting pair, and R = P normalised over each row, C = P normalised over each column, so
no true pair is pushed apart as a negative.

The pair loss regresses each pair's cosine similarity on a target t_p (1: same label, 0: different):

    L = 1/P sum_p (u_p . v_p - t_p)^2          u_p, v_p the unit vectors of the pair's two embeddings
"""

import math

from minillm.backend import xp
from minillm.nn.functional import log_softmax

MAX_LOG_SCALE = math.log(100.0)


# ---------------------------------------------------------------- L2 normalisation
def l2_normalize_forward(x, eps=1e-12):
    """y = x / ||x|| over the last axis; x: (..., D)."""
    norm = xp.sqrt((x * x).sum(axis=-1, keepdims=True)) + eps  # (..., 1)
    y = x / norm
    return y, (y, norm)


def l2_normalize_backward(dy, cache):
    """dx = (dy - y (y . dy)) / ||x||: only the part of dy across the sphere passes."""
    y, norm = cache
    return (dy - y * (y * dy).sum(axis=-1, keepdims=True)) / norm


# ---------------------------------------------------------------- the symmetric InfoNCE loss
def clip_loss_forward(u, v, log_scale, positives=None, max_log_scale=MAX_LOG_SCALE):
    """u: (N, D), v: (M, D) unit vectors; log_scale: t, an array of one value; positives: (N, M) 0/1
    with at least one 1 in every row and column (default: the identity, N == M). -> (loss, cache)."""
    N, M = u.shape[0], v.shape[0]
    P = xp.eye(N, dtype=u.dtype) if positives is None else xp.asarray(positives, dtype=u.dtype)
    R = P / P.sum(axis=1, keepdims=True)  # (N, M) rows sum to 1
    C = P / P.sum(axis=0, keepdims=True)  # (N, M) columns sum to 1
    t = log_scale.reshape(())
    clamped = t > max_log_scale
    s = xp.exp(xp.minimum(t, max_log_scale))
    z = s * (u @ v.T)  # (N, M)
    log_rows, log_cols = log_softmax(z, axis=1), log_softmax(z, axis=0)
    loss = -0.5 * ((R * log_rows).sum() / N + (C * log_cols).sum() / M)
    return loss, (u, v, s, z, R, C, xp.exp(log_rows), xp.exp(log_cols), clamped, log_scale.shape)


def clip_loss_backward(dloss, cache):
    """(du, dv, dlog_scale): dz = dloss/2 [(softmax_rows - R)/N + (softmax_cols - C)/M],
    du = s dz v, dv = s dz^T u, dt = sum(dz * z) (dz/dt = z since s = e^t), 0 where clamped."""
    u, v, s, z, R, C, p_rows, p_cols, clamped, t_shape = cache
    N, M = z.shape
    dz = 0.5 * dloss * ((p_rows - R) / N + (p_cols - C) / M)  # (N, M)
    dt = xp.where(clamped, 0.0, (dz * z).sum())
    return s * (dz @ v), s * (dz.T @ u), dt.reshape(t_shape).astype(u.dtype)


# ---------------------------------------------------------------- cosine-similarity regression of pairs
def cosine_mse_forward(a, b, target):
    """a, b: (P, D) the two embeddings of each pair (any length); target: (P,) -> (loss, cache)."""
    u, u_cache = l2_normalize_forward(a)  # (P, D)
    v, v_cache = l2_normalize_forward(b)  # (P, D)
    diff = (u * v).sum(axis=-1) - target  # (P,) cos_p - t_p
    return (diff * diff).mean(), (u, v, u_cache, v_cache, diff)


def cosine_mse_backward(dloss, cache):
    """(da, db): dcos_p = 2 dloss (cos_p - t_p) / P, du_p = dcos_p v_p, dv_p = dcos_p u_p, then through the
    normalisations."""
    u, v, u_cache, v_cache, diff = cache
    dcos = (2.0 * dloss / diff.shape[0]) * diff[:, None]  # (P, 1)
    return l2_normalize_backward(dcos * v, u_cache), l2_normalize_backward(dcos * u, v_cache)
