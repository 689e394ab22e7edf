"""Multi-head self-attention with a fused QKV projection (GPT-2's layout).

For each head h, with W_Q, W_K, W_V slices of one (C, 3C) matrix:

    q_i = W_Q x_i,  k_j = W_K x_j,  v_j = W_V x_j
    e_ij = q_i . k_j / sqrt(D),  alpha = softmax_j(e),  y_i = sum_j alpha_ij v_j

then the heads are concatenated and projected back to C channels.
Masks are boolean, True where a query may attend to a key; the causal mask,
a padding mask and any other mask (an objective's own, such as XLNet's
factorization order) are combined with a logical and.
"""

from minillm.backend import xp
from minillm.nn import functional as F
from minillm.nn.layers import Conv1D, Dropout, Module


def combine_masks(t_query, t_key, causal=False, padding_mask=None, mask=None):
    """One boolean mask broadcastable to (B, H, Tq, Tk), or None when nothing is masked.

    causal: query i (the last Tq of Tk positions) sees keys j <= i.
    padding_mask: (B, Tk), nonzero for real tokens; pads are never attended to.
    mask: any boolean array broadcastable to (B, H, Tq, Tk).
    """
    out = None
    if causal:
        offset = t_key - t_query  # earlier positions already in the KV cache
        out = xp.tril(xp.ones((t_query, t_key), dtype=bool), k=offset)[None, None]
    if padding_mask is not None:
        pad = (xp.asarray(padding_mask) != 0)[:, None, None, :]  # (B, 1, 1, Tk)
        out = pad if out is None else out & pad
    if mask is not None:
        mask = xp.asarray(mask, dtype=bool)
        out = mask if out is None else out & mask
    return out


def split_past(dk, dv, n_past):
    """(dk, dv) of the new positions and (dk, dv) of the n_past positions before them (None when 0)."""
    if not n_past:
        return dk, dv, None
    return dk[:, :, n_past:], dv[:, :, n_past:], (dk[:, :, :n_past], dv[:, :, :n_past])


class SelfAttention(Module):
    """GPT-2's `attn`: c_attn (C -> 3C) fused QKV, scaled dot-product attention, c_proj (C -> C)."""

    def __init__(self, n_embd, n_head, rng, dropout_source, attn_pdrop=0.0, resid_pdrop=0.0,
                 proj_std=0.02, dtype="float32"):
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.c_attn = Conv1D(n_embd, 3 * n_embd, rng, dtype=dtype)
        self.c_proj = Conv1D(n_embd, n_embd, rng, std=proj_std, dtype=dtype)
        self.attn_pdrop = attn_pdrop  # dropout on the attention weights alpha
        self.dropout_source = dropout_source
        self.resid_dropout = Dropout(resid_pdrop, dropout_source)

    def forward(self, x, causal=True, padding_mask=None, mask=None, past=None, use_cache=False):
        """x: (B, T, C) -> (B, T, C). With use_cache, also returns (k, v) for the next call.

        past: (k, v) from earlier calls, each (B, H, Tpast, D), so that generation
        computes attention for the new positions only; or trained prefix keys and
        values (prefix tuning), whose gradients backward leaves in `dpast`.
        """
        T = x.shape[1]
        qkv = self.c_attn(x)  # (B, T, 3C)
        q, k, v = (F.split_heads(a, self.n_head) for a in xp.split(qkv, 3, axis=-1))  # (B, H, T, D) each
        self.n_past = 0 if past is None else past[0].shape[2]
        if past is not None:
            k = xp.concatenate([past[0], k], axis=2)
            v = xp.concatenate([past[1], v], axis=2)
        full_mask = combine_masks(T, k.shape[2], causal, padding_mask, mask)
        y, self.attn_cache = F.attention_forward(q, k, v, full_mask, self.attn_pdrop,
                                                 self.dropout_source.rng, self.training)  # (B, H, T, D)
        y = self.resid_dropout(self.c_proj(F.merge_heads(y)))  # (B, T, C)
        return (y, (k, v)) if use_cache else y

    def backward(self, dy):
        """Returns dx; with a past, its keys' and values' gradients go to self.dpast, each (B, H, Tpast, D)."""
        dy = self.c_proj.backward(self.resid_dropout.backward(dy))  # (B, T, C)
        dq, dk, dv = F.attention_backward(F.split_heads(dy, self.n_head), self.attn_cache)  # (B, H, T, D)
        dk, dv, self.dpast = split_past(dk, dv, self.n_past)
        dqkv = xp.concatenate([F.merge_heads(d) for d in (dq, dk, dv)], axis=-1)  # (B, T, 3C)
        return self.c_attn.backward(dqkv)
