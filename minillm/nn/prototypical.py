"""Few-shot classification from class prototypes: prototypical networks and first-order Proto-MAML.

Prototypical networks (Snell et al. 2017). An episode has N classes with K support embeddings each
and M query embeddings:

    c_n = (1/K) sum_k s_nk                       (N, D) prototypes: class means of the support set
    z_mn = -||q_m - c_n||^2                      (M, N) logits: minus the squared Euclidean distance

and the loss is the cross-entropy of the queries' labels under softmax(z) (nn/loss.py).

Proto-MAML (Triantafillou et al. 2020) reads the same logits as a linear head: since
-||q - c||^2 = 2 c.q - ||c||^2 - ||q||^2 and the last term is the same for every class, the head

    W_0 = 2 C,  b_0 = -||c_n||^2                 (N, D), (N,)

classifies exactly as the prototypes do. A few SGD steps of cross-entropy on the support set adapt
it to (W', b') (the inner loop), and the queries are scored with z = q W'^T + b'. The first-order
approximation (first-order MAML, Finn et al. 2017) takes dW'/dW_0 = I: the query loss's gradient
with respect to the adapted head is used as its gradient with respect to W_0 and b_0, and through
them reaches the prototypes and the support embeddings.
"""

from minillm.backend import xp
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward


# ---------------------------------------------------------------- prototypical networks
def prototype_logits_forward(support, query):
    """support: (N, K, D), query: (M, D) -> z (M, N), z_mn = -||q_m - c_n||^2 with c_n the mean of s_n."""
    c = support.mean(axis=1)  # (N, D)
    diff = query[:, None, :] - c[None, :, :]  # (M, N, D)
    z = -(diff * diff).sum(axis=-1)  # (M, N)
    return z, (diff, support.shape[1])


def prototype_logits_backward(dz, cache):
    """(dsupport, dquery): dq_m = -2 sum_n dz_mn (q_m - c_n), dc_n = 2 sum_m dz_mn (q_m - c_n),
    ds_nk = dc_n / K (every support embedding shares its prototype's gradient)."""
    diff, k = cache
    weighted = dz[:, :, None] * diff  # (M, N, D)
    dquery = -2 * weighted.sum(axis=1)  # (M, D)
    dc = 2 * weighted.sum(axis=0)  # (N, D)
    dsupport = xp.broadcast_to((dc / k)[:, None, :], (dc.shape[0], k, dc.shape[1])).copy()  # (N, K, D)
    return dsupport, dquery


# ---------------------------------------------------------------- Proto-MAML's head
def prototype_head(support):
    """(W_0, b_0) = (2 C, -||c_n||^2) from support (N, K, D): the linear head equal to the prototypes."""
    c = support.mean(axis=1)  # (N, D)
    return 2 * c, -(c * c).sum(axis=1)


def adapt_head(w, b, x, y, steps, lr):
    """The inner loop: `steps` steps of SGD with learning rate lr on the mean cross-entropy of the
    linear head z = x W^T + b over embeddings x (S, D) with labels y (S,); returns new (W', b')."""
    for _ in range(steps):
        _, cache = cross_entropy_forward(x @ w.T + b, y)  # (S, N)
        dz = cross_entropy_backward(1.0, cache)  # (S, N)
        w, b = w - lr * (dz.T @ x), b - lr * dz.sum(axis=0)
    return w, b


def proto_maml_logits_forward(support, query, inner_steps, inner_lr):
    """support (N, K, D), query (M, D) -> z (M, N) from the head adapted on the support set."""
    n, k, d = support.shape
    labels = xp.repeat(xp.arange(n), k)  # (N K,) the support set's classes, in its order
    w0, b0 = prototype_head(support)
    w, b = adapt_head(w0, b0, support.reshape(n * k, d), labels, inner_steps, inner_lr)
    return query @ w.T + b, (query, w, support.mean(axis=1), k)


def proto_maml_logits_backward(dz, cache):
    """(dsupport, dquery), first order: dq = dz W'; dW_0 = dW' = dz^T q, db_0 = db' = sum_m dz_m;
    then through W_0 = 2C and b_0 = -||c||^2, dc_n = 2 dW_0n - 2 c_n db_0n, and ds_nk = dc_n / K.
    Exact when inner_steps = 0; otherwise the query gradient is exact and the support's first order."""
    query, w, c, k = cache
    dquery = dz @ w  # (M, D)
    dw0, db0 = dz.T @ query, dz.sum(axis=0)  # (N, D), (N,)
    dc = 2 * dw0 - 2 * c * db0[:, None]  # (N, D)
    dsupport = xp.broadcast_to((dc / k)[:, None, :], (c.shape[0], k, c.shape[1])).copy()  # (N, K, D)
    return dsupport, dquery
