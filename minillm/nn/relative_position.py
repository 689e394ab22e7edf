"""A learned attention bias by relative position, in log-spaced buckets (T5's, as MPNet uses it).

The score of query i for key j gets a bias that depends only on the offset j - i, through a bucket:

    n = i - j                                         how far back the key is (negative: ahead)
    bucket(j - i) = (n < 0) * N/2 + { |n|                                          if |n| < N/4
                                    { min(N/4 + floor(log(|n| / (N/4)) / log(M / (N/4)) * N/4), N/2 - 1)
    b[h, i, j] = W[bucket(j - i), h]                  W: (N, H), one learned number per bucket and head

with N buckets (32) and M the distance (128) from which every offset shares the last bucket: half
the buckets for keys at or before the query, half for keys after it; in each half the first N/4
offsets have a bucket each, the rest share log-spaced ones. The bias is the same for every row of
a batch, and MPNet adds the same one to every layer's scores. Its gradient is the lookup's:

    dW[k, h] = sum over (b, i, j) with bucket(j - i) = k of dL/db[b, h, i, j]

a scatter-add of the scores' gradient (an embedding's backward, nn/functional.py).
"""

import math

from minillm.backend import np, to_device, xp
from minillm.nn import functional as F
from minillm.nn.layers import Module, Parameter, normal_init


def relative_position_bucket(relative_position, num_buckets=32, max_distance=128):
    """bucket(j - i) of the docstring for an int array of offsets j - i (host NumPy) -> ints of its shape."""
    half = num_buckets // 2
    n = -np.asarray(relative_position)  # i - j: positive for keys before the query
    bucket = (n < 0) * half  # keys after the query take the upper half
    n = np.abs(n)
    max_exact = half // 2
    far = max_exact + (np.log(np.maximum(n, 1) / max_exact) / math.log(max_distance / max_exact)
                       * (half - max_exact)).astype(np.int64)  # floor: the argument is >= 0 where it is used
    return bucket + np.where(n < max_exact, n, np.minimum(far, half - 1))


def relative_buckets(t_query, t_key, num_buckets=32, max_distance=128):
    """(Tq, Tk) buckets of j - i for queries 0..Tq-1 and keys 0..Tk-1, on the device."""
    offsets = np.arange(t_key)[None, :] - np.arange(t_query)[:, None]  # j - i
    return to_device(relative_position_bucket(offsets, num_buckets, max_distance))


def relative_bias_forward(table, buckets):
    """b[0, h, i, j] = W[bucket[i, j], h].  table W: (N, H), buckets: (Tq, Tk) ints -> (1, H, Tq, Tk)."""
    rows, cache = F.embedding_forward(buckets, table)  # (Tq, Tk, H)
    return rows.transpose(2, 0, 1)[None], cache


def relative_bias_backward(dbias, cache):
    """dW: dbias (..., H, Tq, Tk) summed over its leading axes (batch rows, layers), then scatter-added by
    bucket -> (N, H)."""
    d = dbias.reshape(-1, *dbias.shape[-3:]).sum(axis=0)  # (H, Tq, Tk)
    return F.embedding_backward(d.transpose(1, 2, 0), cache)  # each bucket's row collects its (i, j)


class RelativePositionBias(Module):
    """`relative_attention_bias`: W (num_buckets, n_head), Hugging Face's nn.Embedding of that shape."""

    def __init__(self, num_buckets, n_head, rng, std=0.02, max_distance=128, dtype="float32"):
        self.weight = Parameter(normal_init((num_buckets, n_head), std, rng, dtype))
        self.num_buckets, self.max_distance = num_buckets, max_distance

    def forward(self, t):  # -> (1, H, T, T), for a sequence of t tokens
        buckets = relative_buckets(t, t, self.num_buckets, self.max_distance)
        bias, self.cache = relative_bias_forward(self.weight.data, buckets)
        return bias

    def backward(self, dbias):
        """dbias: (..., H, T, T), the scores' gradient from every layer that added the bias."""
        if self.weight.requires_grad:
            self.weight.accumulate(relative_bias_backward(dbias, self.cache))
