"""BERT: the encoder of Devlin et al. (2018), with Hugging Face's names and layouts.

    h_0 = LN(W_word[ids] + W_pos[t] + W_type[token_type])     three embeddings, then LayerNorm
    a   = LN(h + attn(h) W_O + b_O)                           post-LN: the residual sum is normalised
    h'  = LN(a + gelu(a W_1 + b_1) W_2 + b_2)                 exact (erf) GELU
    pooled = tanh(h_L[CLS] W_P + b_P)                         the sentence vector, for NSP and classifiers

`BertModel` (embeddings + encoder + pooler) is the part every head reuses:
the pretraining heads (bert_pretraining.py) and the fine-tuning ones (heads.py). Every module's
`backward` adds into its parameters' `.grad` and returns the gradient of its
input, and the models call them in reverse order, one line a module.
Linear weights are stored (out, in) as PyTorch stores them.
"""

import dataclasses

from minillm.backend import xp
from minillm.checkpoint import Config, Pretrained
from minillm.nn import functional as F
from minillm.nn.attention import combine_masks, split_past
from minillm.nn.layers import (GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, RandomSource,
                               gradients_ready)


@dataclasses.dataclass
class BertConfig(Config):
    """Hyperparameters, named as in Hugging Face's BertConfig (defaults: BERT-base)."""

    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size")
    checked = {"model_type": ("bert",), "hidden_act": ("gelu",),  # BERT's exact erf GELU
               "position_embedding_type": ("absolute",)}  # the only position encoding implemented

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    pruned_heads: dict = dataclasses.field(default_factory=dict)  # {layer: [heads removed]}, as Hugging Face

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")
        self.pruned_heads = {str(k): sorted(int(h) for h in v) for k, v in (self.pruned_heads or {}).items()}
        for layer, heads in self.pruned_heads.items():
            if not set(heads) < set(range(self.num_attention_heads)):
                raise ValueError(f"pruned_heads of layer {layer}: {heads} must leave at least one of "
                                 f"{self.num_attention_heads} heads")

    @property
    def max_tokens(self):
        """The longest input: one position a token."""
        return self.max_position_embeddings

    def heads_of_layer(self, i):
        """The attention heads layer i keeps (all but its pruned ones)."""
        return self.num_attention_heads - len(self.pruned_heads.get(str(i), ()))


# ---------------------------------------------------------------- embeddings
class BertEmbeddings(Module):
    """h_0 = dropout(LN(W_word[ids] + W_pos[0..T-1] + W_type[token_type_ids]))."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        std = cfg.initializer_range
        self.word_embeddings = Embedding(cfg.vocab_size, cfg.hidden_size, rng, std=std, dtype=dtype)
        self.word_embeddings.weight.data[cfg.pad_token_id] = 0  # as Hugging Face initialises padding_idx
        self.pad_token_id = cfg.pad_token_id
        self.position_embeddings = Embedding(cfg.max_position_embeddings, cfg.hidden_size, rng, std=std, dtype=dtype)
        self.token_type_embeddings = Embedding(cfg.type_vocab_size, cfg.hidden_size, rng, std=std, dtype=dtype)
        self.LayerNorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(cfg.hidden_dropout_prob, dropout_source)

    def forward(self, input_ids, token_type_ids, inputs_embeds=None, past_length=0):
        """(B, T) ids (or inputs_embeds (B, T, C) instead of the word lookup) -> (B, T, C).

        past_length: positions before these (prefix tuning's), so they start there, as in Hugging Face.
        """
        self.from_embeds = inputs_embeds is not None
        self.input_ids = input_ids
        words = inputs_embeds if self.from_embeds else self.word_embeddings(input_ids)
        pos = xp.arange(past_length, past_length + words.shape[1])[None, :]  # (1, T): the same for every row
        x = words + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))

    def needs_gradient(self):
        """Whether backward has work: a table that learns, or inputs_embeds, whose gradient is returned.
        Parameter-efficient fine-tuning freezes the tables and feeds ids: then nothing below the first
        layer's parameters needs a gradient (BertModel.backward)."""
        return self.from_embeds or any(p.requires_grad for p in self.parameters())

    def backward(self, dout):
        """Fills the three tables' gradients; returns d(inputs_embeds), or None for ids."""
        if not self.needs_gradient():
            return None
        dx = self.LayerNorm.backward(self.dropout.backward(dout))  # (B, T, C), the sum's gradient
        self.token_type_embeddings.backward(dx)
        self.position_embeddings.backward(dx.sum(axis=0, keepdims=True))
        return self.words_backward(dx)

    def words_backward(self, dx):
        """dx is the gradient of the word vectors: returned when they were inputs_embeds, else scattered into
        the word table, none into the padding row (PyTorch's Embedding(padding_idx), as Hugging Face)."""
        if self.from_embeds:
            return dx
        if self.word_embeddings.weight.requires_grad:
            self.word_embeddings.backward(xp.where((self.input_ids == self.pad_token_id)[..., None], 0.0, dx))
        return None


# ---------------------------------------------------------------- one encoder layer
class BertSelfAttention(Module):
    """`attention.self`: q, k, v projections and scaled dot-product attention over all heads.

    e_ij = (W_Q h_i) . (W_K h_j) / sqrt(D),  alpha = softmax_j(e) on the allowed keys,
    context_i = sum_j alpha_ij W_V h_j; no output projection here (that is attention.output).
    A layer with pruned heads (config.pruned_heads) has n_head of them, each of size C / num_attention_heads.
    A past (k, v), each (B, H, Tpast, D), is attended to before h's own keys (prefix tuning's
    trained prefixes); backward leaves its gradients in `dpast`. A bias b_ij broadcastable to
    (B, H, T, T) is added to e_ij (MPNet's relative positions); backward leaves d(bias) in `dbias`.
    """

    def __init__(self, cfg, rng, dropout_source, dtype, n_head):
        C, std = cfg.hidden_size, cfg.initializer_range
        self.n_head = n_head
        width = n_head * (C // cfg.num_attention_heads)  # C unless heads were pruned
        self.query = Linear(C, width, rng, std=std, dtype=dtype)
        self.key = Linear(C, width, rng, std=std, dtype=dtype)
        self.value = Linear(C, width, rng, std=std, dtype=dtype)
        self.attn_pdrop = cfg.attention_probs_dropout_prob
        self.dropout_source = dropout_source

    def forward(self, h, mask, past=None, bias=None):
        q, k, v = (F.split_heads(proj(h), self.n_head) for proj in (self.query, self.key, self.value))
        self.n_past = 0 if past is None else past[0].shape[2]
        if past is not None:
            k, v = xp.concatenate([past[0], k], axis=2), xp.concatenate([past[1], v], axis=2)
        y, self.cache = F.attention_forward(q, k, v, mask, self.attn_pdrop, self.dropout_source.rng, self.training,
                                            bias)
        return F.merge_heads(y)  # (B, T, C)

    def backward(self, dy, input_grad=True):
        """Returns dh (None without input_grad: then only the projections' parameters learn)."""
        dq, dk, dv, *dbias = F.attention_backward(F.split_heads(dy, self.n_head), self.cache)  # (B, H, T, D) each
        self.dbias = dbias[0] if dbias else None  # in the bias's shape
        dk, dv, self.dpast = split_past(dk, dv, self.n_past)
        dh = self.query.backward(F.merge_heads(dq), input_grad)
        dh_k = self.key.backward(F.merge_heads(dk), input_grad)
        dh_v = self.value.backward(F.merge_heads(dv), input_grad)
        if input_grad:  # h fed all three projections, so its gradient is the sum of theirs
            dh += dh_k
            dh += dh_v
        return dh


class BertResidualOutput(Module):
    """`attention.output` and `output`: y = LN(residual + dropout(x W^T + b)), post-LN."""

    def __init__(self, n_in, cfg, rng, dropout_source, dtype):
        self.dense = Linear(n_in, cfg.hidden_size, rng, std=cfg.initializer_range, dtype=dtype)
        self.LayerNorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(cfg.hidden_dropout_prob, dropout_source)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)

    def backward(self, dy):
        """Returns (dx, dresidual): the normalised sum passes one gradient to both terms."""
        dsum = self.LayerNorm.backward(dy)
        return self.dense.backward(self.dropout.backward(dsum)), dsum


class BertAttention(Module):
    """`attention`: a = LN(h + dropout(selfattn(h) W_O + b_O))."""

    def __init__(self, cfg, rng, dropout_source, dtype, n_head):
        self.self = BertSelfAttention(cfg, rng, dropout_source, dtype, n_head)
        width = n_head * (cfg.hidden_size // cfg.num_attention_heads)
        self.output = BertResidualOutput(width, cfg, rng, dropout_source, dtype)

    def forward(self, h, mask, past=None, bias=None):
        return self.output(self.self(h, mask, past, bias), h)

    def backward(self, da, input_grad=True):
        """Returns dh (None without input_grad)."""
        dcontext, dh = self.output.backward(da)
        dh_self = self.self.backward(dcontext, input_grad=input_grad)
        if not input_grad:
            return None
        dh += dh_self  # the residual's gradient and the sublayer's
        return dh


class BertIntermediate(Module):
    """`intermediate`: gelu(a W_1^T + b_1), C -> intermediate_size, exact erf GELU."""

    def __init__(self, cfg, rng, dtype):
        self.dense = Linear(cfg.hidden_size, cfg.intermediate_size, rng, std=cfg.initializer_range, dtype=dtype)
        self.intermediate_act_fn = GELU("erf")

    def forward(self, a):
        return self.intermediate_act_fn(self.dense(a))

    def backward(self, dy):
        return self.dense.backward(self.intermediate_act_fn.backward(dy))


class BertLayer(Module):
    """One post-LN encoder block: attention (with its Add & Norm), then feed-forward (with its own)."""

    def __init__(self, cfg, rng, dropout_source, dtype, index=0):
        self.attention = BertAttention(cfg, rng, dropout_source, dtype, cfg.heads_of_layer(index))
        self.intermediate = BertIntermediate(cfg, rng, dtype)
        self.output = BertResidualOutput(cfg.intermediate_size, cfg, rng, dropout_source, dtype)

    def forward(self, h, mask, past=None, bias=None):  # (B, T, C) -> (B, T, C)
        a = self.attention(h, mask, past, bias)
        return self.output(self.intermediate(a), a)

    def backward(self, dy, input_grad=True):
        """Returns dh (None without input_grad: the first layer over frozen embeddings)."""
        dmid, da = self.output.backward(dy)
        da += self.intermediate.backward(dmid)
        return self.attention.backward(da, input_grad)


class BertEncoder(Module):
    def __init__(self, cfg, rng, dropout_source, dtype):
        self.layer = ModuleList([BertLayer(cfg, rng, dropout_source, dtype, i) for i in range(cfg.num_hidden_layers)])

    def forward(self, h, mask, past_key_values=None, bias=None):
        """bias: added to every layer's attention scores (see BertSelfAttention)."""
        for i, layer in enumerate(self.layer):
            h = layer(h, mask, None if past_key_values is None else past_key_values[i], bias)
        return h

    def backward(self, dh, input_grad=True):
        """Returns the gradient of the first layer's input (None without input_grad)."""
        for i in reversed(range(len(self.layer))):
            dh = self.layer[i].backward(dh, input_grad or i > 0)
            gradients_ready(self.layer[i])  # (data parallelism may start summing its gradients over the ranks)
        return dh


class BertPooler(Module):
    """pooled = tanh(h[:, 0] W_P^T + b_P): the [CLS] position, squashed."""

    def __init__(self, cfg, rng, dtype):
        self.dense = Linear(cfg.hidden_size, cfg.hidden_size, rng, std=cfg.initializer_range, dtype=dtype)

    def forward(self, h):  # (B, T, C) -> (B, C)
        self.seq_shape = h.shape
        self.pooled = xp.tanh(self.dense(h[:, 0]))
        return self.pooled

    def backward(self, dpooled):
        """d tanh(z) / dz = 1 - tanh(z)^2; only position 0 receives a gradient."""
        dcls = self.dense.backward(dpooled * (1.0 - self.pooled * self.pooled))  # (B, C)
        dh = xp.zeros(self.seq_shape, dtype=dcls.dtype)
        dh[:, 0] = dcls
        return dh


# ---------------------------------------------------------------- the encoder model
class BertModel(Pretrained, Module):
    """Embeddings + encoder + pooler: Hugging Face's BertModel, the body every BERT head reuses.

    add_pooling_layer=False leaves the pooler out (pooled output None), as
    Hugging Face does for heads that read every position (token classification, question answering).
    from_pretrained reads the encoder of a bare BertModel checkpoint (MiniLM's
    names have no `bert.` prefix) or of a BertForPreTraining one, whose heads
    (`cls.*`) are not used; a missing, unexpected or misshapen tensor is an error.
    """

    config_class, architecture = BertConfig, "BertModel"
    embeddings_class, encoder_class = BertEmbeddings, BertEncoder  # MPNet (models/mpnet.py) swaps these

    def __init__(self, cfg, rng, dropout_source, dtype, add_pooling_layer=True):
        self.config = cfg
        self.embeddings = self.embeddings_class(cfg, rng, dropout_source, dtype)
        self.encoder = self.encoder_class(cfg, rng, dropout_source, dtype)
        self.pooler = BertPooler(cfg, rng, dtype) if add_pooling_layer else None
        self.max_positions = cfg.max_tokens

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, inputs_embeds=None,
                past_key_values=None):
        """-> (sequence output (B, T, C), pooled [CLS] (B, C) or None without a pooler).

        attention_mask: (B, Tpast + T), 1 for real tokens and 0 for padding, which no
        query attends to. token_type_ids: (B, T) segment of each token (0 = A, 1 = B).
        past_key_values: for each layer (k, v), each (B, H, Tpast, D), attended to before the
        tokens (prefix tuning); positions then start at Tpast, as in Hugging Face.
        """
        if input_ids is not None:
            input_ids = xp.asarray(input_ids)
        B, T = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        t_past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        if t_past + T > self.max_positions:
            raise ValueError(f"sequence of {t_past + T} tokens is longer than "
                             f"max_position_embeddings={self.max_positions}")
        token_type_ids = xp.zeros((B, T), dtype=xp.int64) if token_type_ids is None else xp.asarray(token_type_ids)
        mask = combine_masks(T, t_past + T, padding_mask=attention_mask)  # (B, 1, 1, Tpast + T) or None
        h = self.embeddings(input_ids, token_type_ids, inputs_embeds, t_past)
        h = self.encoder(h, mask, past_key_values)
        return h, None if self.pooler is None else self.pooler(h)

    def backward(self, dseq, dpooled=None):
        """From the gradients of both outputs to the embedding tables; returns d(inputs_embeds) or None."""
        dh = dseq if dpooled is None else dseq + self.pooler.backward(dpooled)
        if self.pooler is not None:
            gradients_ready(self.pooler)  # (no gradient at all, without dpooled)
        if not self.embeddings.needs_gradient():  # frozen tables: the first layer skips its input's gradient
            self.encoder.backward(dh, input_grad=False)
            return None
        return self.embeddings.backward(self.encoder.backward(dh))

    @classmethod
    def from_config_dict(cls, config, source, dtype="float32"):
        cfg = cls.config_class.from_dict(config, source)
        return cls(cfg, xp.random.default_rng(0), RandomSource(0), dtype)  # every weight is then overwritten

    @staticmethod
    def state_from_checkpoint(tensors):
        return {n[len("bert."):]: a for n, a in hf_bert_state(tensors).items() if n.startswith("bert.")}


def hf_bert_state(tensors):
    """Hugging Face BERT tensors under our names.

    A bare BertModel checkpoint lacks the `bert.` prefix; `position_ids` /
    `token_type_ids` are buffers, not parameters; `cls.predictions.decoder.weight`
    (when stored) must equal the tied word embeddings and `cls.predictions.decoder.bias`
    the head's bias, so both are dropped after that check.
    """
    state = {}
    for name, a in tensors.items():
        if name.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue
        heads = ("bert.", "cls.", "classifier.", "qa_outputs.")  # task heads keep their own names
        state[name if name.startswith(heads) else "bert." + name] = a
    for tied, owner in (("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
                        ("cls.predictions.decoder.bias", "cls.predictions.bias")):
        if tied in state:
            copy = state.pop(tied)
            kept = state.setdefault(owner, copy)
            if not (kept.shape == copy.shape and (kept == copy).all()):
                raise ValueError(f"{tied} differs from {owner}; BERT here ties them")
    return state
