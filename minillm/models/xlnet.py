"""XLNet's two-stream Transformer for permutation language modelling (Yang et al., 2019), small.

Two streams run through the same layers. The content stream h_i encodes the
token at i (and what the order lets it see); the query stream g_i knows only
its position, so it can predict the token at i without seeing it:

    h_0 = W_word[x_i] + W_pos[i]          g_0 = w + W_pos[i]        (w: one learned vector, mask_emb)
    K = h W_K,  V = h W_V                 keys and values: from the CONTENT stream only
    a^h_i = attn(h_i W_Q, K, V; content mask: r(j) <= r(i))
    a^g_i = attn(g_i W_Q, K, V; query mask:   r(j) <  r(i))
    s'  = LN(s + a^s W_O)                 for s in {h, g}: post-LN, as XLNet
    s'' = LN(s' + gelu(s' W_1 + b_1) W_2 + b_2)
    logits_i = g_L,i W_word^T + b         at the predicted positions, decoder tied to W_word

The two streams share every weight, so a layer stacks them on a leading axis
of 2 ((2, B, T, C): [0] = h, [1] = g) and runs each module once on both: one
cache per module, and the shared weights' gradients add up by themselves.

Positions are absolute learned embeddings added to both streams, plus (with
relative_bias, the default) a learned score per head and relative offset j - i
added to every attention score, as T5 does, started as ALiBi's linear
distance penalty (Press et al., 2022) with slopes m_h from 1/2 to 1/16:

    e_ij = q_i . k_j / sqrt(D) + b_h[j - i],     b_h[d] = -m_h |d| at the start

Why: the absolute embeddings give the query stream its target's position,
which is all the two-stream idea needs, but a query then finds its
neighbours only through position-matching projections grown from small
random embeddings, which takes Adam thousands of steps; a short run stays at
a unigram model's loss. Started local, the heads read their neighbours from
the first step and can learn to look further (measurements: docs/RESULTS.md).

XLNet itself uses sinusoidal relative encodings with r_w / r_r biases and
segment recurrence (a memory of the previous segment), left out to keep the
backward pass short and checkable; with one segment at a time there is
nothing to recur over. Names follow Hugging Face's XLNetLMHeadModel where a
part exists there (`transformer.word_embedding`, `transformer.mask_emb`,
`transformer.layer.{i}.ff...`, `lm_loss.bias`); the attention is `attn`, not
`rel_attn`, since its relative part is not XLNet's.
"""

import dataclasses

from minillm.backend import xp
from minillm.checkpoint import Config, Pretrained
from minillm.nn import functional as F
from minillm.nn.layers import (GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Parameter, RandomSource,
                               gradients_ready, normal_init)

MODEL_TYPE = "minillm-xlnet"


@dataclasses.dataclass
class XLNetConfig(Config):
    """Hyperparameters, named as in Hugging Face's XLNetConfig where they exist there."""

    required = ("vocab_size", "d_model", "n_layer", "n_head", "d_inner", "max_position_embeddings", "relative_bias")
    checked = {"model_type": (MODEL_TYPE,), "ff_activation": ("gelu",)}

    vocab_size: int = 32000
    d_model: int = 128
    n_layer: int = 2
    n_head: int = 2
    d_inner: int = 512
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    max_position_embeddings: int = 128
    relative_bias: bool = True  # a learned score per head and offset j - i (see the module docstring)

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")


class TwoStreamAttention(Module):
    """Both streams' attention, keys and values from the content stream: x (2, B, T, C) -> (2, B, T, C).

    mask: bool (2, B, 1, T, T), [0] the content mask, [1] the query mask.
    Returns LN(x + dropout(a W_O)). relative_attention_bias (2P - 1, H), T5's layout:
    row P - 1 + (j - i) holds each head's score added for key j seen from query i.
    """

    def __init__(self, cfg, rng, dropout_source, dtype):
        C, std = cfg.d_model, cfg.initializer_range
        self.n_head = cfg.n_head
        self.q = Linear(C, C, rng, std=std, bias=False, dtype=dtype)  # XLNet's projections have no bias
        self.k = Linear(C, C, rng, std=std, bias=False, dtype=dtype)
        self.v = Linear(C, C, rng, std=std, bias=False, dtype=dtype)
        self.o = Linear(C, C, rng, std=std, bias=False, dtype=dtype)
        self.layer_norm = LayerNorm(C, cfg.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(cfg.dropout, dropout_source)
        self.attn_pdrop, self.dropout_source = cfg.dropout, dropout_source
        self.relative_attention_bias = Parameter(alibi_init(cfg.n_head, cfg.max_position_embeddings, dtype)) \
            if cfg.relative_bias else None

    def forward(self, x, mask):
        q = F.split_heads(self.q(x), self.n_head)  # (2, B, H, T, D): h W_Q and g W_Q
        k = F.split_heads(self.k(x[0]), self.n_head)[None]  # (1, B, H, T, D), broadcast over the two streams
        v = F.split_heads(self.v(x[0]), self.n_head)[None]
        bias = None
        if self.relative_attention_bias is not None:  # a lookup of b[j - i], as an embedding of the offsets
            T, table = x.shape[-2], self.relative_attention_bias.data
            offsets = xp.arange(T)[None, :] - xp.arange(T)[:, None] + (table.shape[0] - 1) // 2  # (T, T)
            rows, self.bias_cache = F.embedding_forward(offsets, table)  # (T, T, H)
            bias = rows.transpose(2, 0, 1)  # (H, T, T): the same for both streams and every batch row
        a, self.cache = F.attention_forward(q, k, v, mask, self.attn_pdrop, self.dropout_source.rng, self.training,
                                            bias)
        return self.layer_norm(x + self.dropout(self.o(F.merge_heads(a))))

    def backward(self, dy):
        dsum = self.layer_norm.backward(dy)
        da = F.split_heads(self.o.backward(self.dropout.backward(dsum)), self.n_head)  # (2, B, H, T, D)
        dq, dk, dv, *dbias = F.attention_backward(da, self.cache)
        if dbias:  # (H, T, T): each offset's row collects every (i, j) at that offset
            self.relative_attention_bias.accumulate(F.embedding_backward(dbias[0].transpose(1, 2, 0), self.bias_cache))
        dx = dsum + self.q.backward(F.merge_heads(dq))  # the residual, and both streams' queries
        # k and v were broadcast over the streams: their gradients are summed over them, and reach h only
        dx[0] += self.k.backward(F.merge_heads(dk.sum(axis=0)))
        dx[0] += self.v.backward(F.merge_heads(dv.sum(axis=0)))
        return dx


def alibi_init(n_head, max_positions, dtype):
    """(2P - 1, H): -m_h |d| in row P - 1 + d, slopes m_h spaced geometrically from 1/2 to 1/16."""
    exponents = xp.linspace(1.0, 4.0, n_head) if n_head > 1 else xp.ones(1)
    distance = abs(xp.arange(2 * max_positions - 1) - (max_positions - 1))  # |d|
    return (-distance[:, None] * (2.0 ** -exponents)[None, :]).astype(dtype)


class PositionwiseFF(Module):
    """`ff`: LN(x + dropout(gelu(x W_1 + b_1) W_2 + b_2)) on both streams."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        self.layer_1 = Linear(cfg.d_model, cfg.d_inner, rng, std=cfg.initializer_range, dtype=dtype)
        self.activation_function = GELU("erf")
        self.layer_2 = Linear(cfg.d_inner, cfg.d_model, rng, std=cfg.initializer_range, dtype=dtype)
        self.layer_norm = LayerNorm(cfg.d_model, cfg.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(cfg.dropout, dropout_source)

    def forward(self, x):
        return self.layer_norm(x + self.dropout(self.layer_2(self.activation_function(self.layer_1(x)))))

    def backward(self, dy):
        dsum = self.layer_norm.backward(dy)
        return dsum + self.layer_1.backward(self.activation_function.backward(
            self.layer_2.backward(self.dropout.backward(dsum))))


class XLNetLayer(Module):
    """One post-LN block on both streams: x (2, B, T, C) -> (2, B, T, C)."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        self.attn = TwoStreamAttention(cfg, rng, dropout_source, dtype)
        self.ff = PositionwiseFF(cfg, rng, dropout_source, dtype)

    def forward(self, x, mask):
        return self.ff(self.attn(x, mask))

    def backward(self, dy):
        return self.attn.backward(self.ff.backward(dy))


class XLNetModel(Module):
    """`transformer`: embeddings of both streams and the layers; returns both streams' last states."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        std = cfg.initializer_range
        self.word_embedding = Embedding(cfg.vocab_size, cfg.d_model, rng, std=std, dtype=dtype)
        self.position_embedding = Embedding(cfg.max_position_embeddings, cfg.d_model, rng, std=std, dtype=dtype)
        self.mask_emb = Parameter(normal_init((1, 1, cfg.d_model), std, rng, dtype))
        self.dropout = Dropout(cfg.dropout, dropout_source)
        self.layer = ModuleList([XLNetLayer(cfg, rng, dropout_source, dtype) for _ in range(cfg.n_layer)])
        self.max_positions = cfg.max_position_embeddings

    def forward(self, input_ids, content_mask, query_mask):
        """ids (B, T), masks (B, T, T) bools -> x (2, B, T, C): [0] content stream, [1] query stream."""
        B, T = input_ids.shape
        if T > self.max_positions:
            raise ValueError(f"sequence of {T} tokens is longer than max_position_embeddings={self.max_positions}")
        pos = self.position_embedding(xp.arange(T)[None, :])  # (1, T, C)
        h = self.word_embedding(input_ids) + pos  # (B, T, C)
        g = xp.broadcast_to(self.mask_emb.data + pos, h.shape)  # (B, T, C): the same w at every position
        x = self.dropout(xp.stack([h, g]))  # (2, B, T, C)
        # The first position of the order has nothing to look at in the query stream. It is never predicted,
        # so it may attend to every key: attention_backward needs each row to allow some key (a masked key
        # must have weight 0), and its state never reaches another position (queries read only h).
        query_mask = query_mask | ~query_mask.any(axis=-1, keepdims=True)
        mask = xp.stack([content_mask, query_mask])[:, :, None]  # (2, B, 1, T, T): one mask for all heads
        for layer in self.layer:
            x = layer(x, mask)
        return x

    def backward(self, dx):
        for layer in reversed(list(self.layer)):
            dx = layer.backward(dx)
            gradients_ready(layer)  # (data parallelism may start summing this layer's gradients over the ranks)
        dx = self.dropout.backward(dx)  # (2, B, T, C)
        self.word_embedding.backward(dx[0])
        self.position_embedding.backward(dx.sum(axis=(0, 1))[None])  # both streams, every row
        self.mask_emb.accumulate(dx[1].sum(axis=(0, 1)).reshape(self.mask_emb.shape))


class XLNetLMHeadModel(Pretrained, Module):
    """The two-stream Transformer and its LM head on the query stream (Hugging Face's XLNetLMHeadModel).

    Checkpoints hold the parameters under their names; the tied decoder is the word embedding, stored once.
    """

    config_class, architecture = XLNetConfig, "XLNetLMHeadModel"

    def __init__(self, cfg, seed=0, dtype="float32"):
        self.config = cfg
        self.dropout_rng = RandomSource(seed)
        init_rng = xp.random.default_rng(seed)
        self.transformer = XLNetModel(cfg, init_rng, self.dropout_rng, dtype)
        self.lm_loss = XLNetLMHead(cfg.vocab_size, dtype)

    def forward(self, input_ids, content_mask, query_mask, target_mask=None):
        """-> logits: (B, T, V) for every position, or (N, V) for the N positions where target_mask (B, T)
        is True, in row-major order.

        Only the query stream is scored: its state at i never saw the token at i.
        """
        x = self.transformer(xp.asarray(input_ids), xp.asarray(content_mask), xp.asarray(query_mask))
        self.x_shape = x.shape
        self.target_mask = None if target_mask is None else xp.asarray(target_mask, dtype=bool)
        g = x[1] if self.target_mask is None else x[1][self.target_mask]  # (B, T, C) or (N, C)
        return self.lm_loss(g, self.transformer.word_embedding)

    def backward(self, dlogits):
        """Fills every parameter's gradient; the content stream's last state gets none (it is not scored)."""
        dg = self.lm_loss.backward(dlogits)
        gradients_ready(self.lm_loss)  # (its bias: the tied decoder is not its own)
        dx = xp.zeros(self.x_shape, dtype=dg.dtype)  # (2, B, T, C)
        if self.target_mask is None:
            dx[1] = dg
        else:
            dx[1][self.target_mask] = dg  # each position chosen once, so assignment is a sum
        self.transformer.backward(dx)


class XLNetLMHead(Module):
    """`lm_loss`: logits = g W_word^T + b, the decoder tied to the word embedding (passed in, not owned)."""

    def __init__(self, vocab_size, dtype):
        self.bias = Parameter(xp.zeros(vocab_size, dtype=dtype))

    def forward(self, g, word_embedding):  # (..., C) -> (..., V)
        logits, cache = word_embedding.logits_forward(g, self.bias.data)
        self.cache = (cache, word_embedding.weight)
        return logits

    def backward(self, dlogits):
        cache, decoder = self.cache
        dg, dw, db = F.linear_backward(dlogits, cache)
        decoder.accumulate(dw.T)  # the decoder's share of W_word's gradient
        self.bias.accumulate(db)
        return dg
