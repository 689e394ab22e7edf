"""Cross-attention: the queries come from one sequence, the keys and values from another.

    q_i = W_Q x_i,  k_j = W_K c_j,  v_j = W_V c_j      x: (B, Tq, C) one modality, c: (B, Tk, C) the other
    e_ij = q_i . k_j / sqrt(D),  alpha = softmax_j(e),  y_i = W_O [sum_j alpha_ij v_j] + b_O

It is self-attention (attention.py) with x and c two arrays instead of one, so the scaled dot-product
(functional.attention_forward) is shared; the backward returns a gradient for each of x and c.
"""

from minillm.nn import functional as F
from minillm.nn.attention import combine_masks
from minillm.nn.layers import Linear, Module


class CrossAttention(Module):
    """`query` (C -> C) on x, `key` and `value` (C -> C) on the context, `output` (C -> C)."""

    def __init__(self, dim, n_head, rng, std=0.02, dtype="float32"):
        if dim % n_head:
            raise ValueError(f"dim ({dim}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.query = Linear(dim, dim, rng, std=std, dtype=dtype)
        self.key = Linear(dim, dim, rng, std=std, dtype=dtype)
        self.value = Linear(dim, dim, rng, std=std, dtype=dtype)
        self.output = Linear(dim, dim, rng, std=std, dtype=dtype)

    def forward(self, x, context, context_mask=None):
        """x: (B, Tq, C), context: (B, Tk, C), context_mask: (B, Tk) 1 for keys that may be attended to."""
        q = F.split_heads(self.query(x), self.n_head)  # (B, H, Tq, D)
        k, v = (F.split_heads(proj(context), self.n_head) for proj in (self.key, self.value))  # (B, H, Tk, D)
        mask = combine_masks(x.shape[1], context.shape[1], padding_mask=context_mask)
        y, self.cache = F.attention_forward(q, k, v, mask)
        return self.output(F.merge_heads(y))  # (B, Tq, C)

    def backward(self, dy):
        """-> (dx, dcontext): the context fed both keys and values, so its gradient is their sum."""
        dq, dk, dv = F.attention_backward(F.split_heads(self.output.backward(dy), self.n_head), self.cache)
        dx = self.query.backward(F.merge_heads(dq))
        return dx, self.key.backward(F.merge_heads(dk)) + self.value.backward(F.merge_heads(dv))
