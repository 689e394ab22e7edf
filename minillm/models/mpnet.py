"""MPNet's encoder (Song et al. 2020), as Hugging Face's MPNetModel: BERT's layers with relative positions.

    p_t = pad + cumsum_{s <= t}(x_s != pad)   for a real token, pad for padding    RoBERTa's position ids
    h_0 = LN(W_word[x] + W_pos[p])                                   no token-type table
    b[h, i, j] = W_rel[bucket(j - i), h]                             nn/relative_position.py, one table
    a = LN(h + attn(h; b) W_O + b_O),  h' = LN(a + gelu(a W_1 + b_1) W_2 + b_2)   BERT's post-LN layer,
                                                                     b added to every layer's scores
    pooled = tanh(h_L[<s>] W_P + b_P)

So the layer is BERT's (models/bert.py, BertLayer, whose attention takes the additive bias), and
so are the pooler and the backward of the whole model (MPNetModel is a BertModel with other
embeddings and an encoder that adds the bias). The relative bias's gradient is the sum, over the
layers and the batch, of each layer's score gradient, scatter-added into W_rel by bucket.

Hugging Face names the attention's tensors differently from BERT's, and only those:

    encoder.layer.N.attention.attn.{q,k,v}   is   encoder.layer.N.attention.self.{query,key,value}
    encoder.layer.N.attention.attn.o         is   encoder.layer.N.attention.output.dense
    encoder.layer.N.attention.LayerNorm      is   encoder.layer.N.attention.output.LayerNorm

In memory the parameters have BERT's names (the modules are BERT's); checkpoint files keep Hugging
Face's (state_from_checkpoint and checkpoint_state rename), so from_pretrained reads a transformers
MPNet directory and save_pretrained writes one.

Two constants of transformers' code are config fields here, with the same values in every MPNet
checkpoint: the padding index of positions (fixed at 1 there, pad_token_id here) and the number of
buckets (fixed at 32 when the bias is computed, relative_attention_num_buckets here).
"""

import dataclasses

from minillm.backend import xp
from minillm.models.bert import BertConfig, BertEmbeddings, BertEncoder, BertModel
from minillm.nn.attention import combine_masks
from minillm.nn.layers import Dropout, Embedding, LayerNorm, gradients_ready
from minillm.nn.relative_position import RelativePositionBias

# (Hugging Face's piece of a tensor name, ours), for the attention of every layer
RENAMES = ((".attention.attn.q.", ".attention.self.query."), (".attention.attn.k.", ".attention.self.key."),
           (".attention.attn.v.", ".attention.self.value."), (".attention.attn.o.", ".attention.output.dense."),
           (".attention.LayerNorm.", ".attention.output.LayerNorm."))


@dataclasses.dataclass
class MPNetConfig(BertConfig):
    """Hugging Face's MPNetConfig (defaults: mpnet-base); BERT's fields without the token types."""

    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings")
    checked = {"model_type": ("mpnet",), "hidden_act": ("gelu",)}  # the exact erf GELU

    vocab_size: int = 30527
    max_position_embeddings: int = 514  # 512 tokens: positions start after the padding index
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    relative_attention_num_buckets: int = 32

    def __post_init__(self):
        super().__post_init__()
        if self.pruned_heads:
            raise ValueError("pruned_heads: MPNet's relative bias has a column for every head; pruning is not "
                             "implemented for it")

    def to_dict(self):
        d = super().to_dict()
        del d["type_vocab_size"], d["pruned_heads"]  # BERT's fields that MPNet has no use for
        return d

    @property
    def max_tokens(self):
        """The longest input: positions run from pad + 1 to pad + T."""
        return self.max_position_embeddings - self.pad_token_id - 1


class MPNetEmbeddings(BertEmbeddings):
    """h_0 = dropout(LN(W_word[x] + W_pos[p])), p RoBERTa's position ids (module docstring); BERT's
    embeddings without the token-type table."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        std = cfg.initializer_range
        self.pad_token_id = cfg.pad_token_id
        self.word_embeddings = Embedding(cfg.vocab_size, cfg.hidden_size, rng, std=std, dtype=dtype)
        self.position_embeddings = Embedding(cfg.max_position_embeddings, cfg.hidden_size, rng, std=std, dtype=dtype)
        for table in (self.word_embeddings, self.position_embeddings):
            table.weight.data[cfg.pad_token_id] = 0  # Hugging Face's padding_idx rows
        self.LayerNorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(cfg.hidden_dropout_prob, dropout_source)

    def position_ids(self, input_ids, n):
        """(B, T) positions: pad + 1, pad + 2, ... over the real tokens, pad at padding; for inputs_embeds
        (input_ids None) every one of the n tokens is real."""
        if input_ids is None:
            return self.pad_token_id + 1 + xp.arange(n)[None, :]  # (1, T)
        real = (input_ids != self.pad_token_id).astype(xp.int64)  # (B, T)
        return self.pad_token_id + xp.cumsum(real, axis=1) * real

    def forward(self, input_ids, inputs_embeds=None):
        """(B, T) ids (or inputs_embeds (B, T, C) instead of the word lookup) -> (B, T, C)."""
        self.from_embeds = inputs_embeds is not None
        self.input_ids = input_ids
        words = inputs_embeds if self.from_embeds else self.word_embeddings(input_ids)
        self.positions = self.position_ids(None if self.from_embeds else input_ids, words.shape[1])
        return self.dropout(self.LayerNorm(words + self.position_embeddings(self.positions)))

    def backward(self, dout):
        """Fills both tables' gradients (none into their padding rows, as PyTorch's padding_idx); returns
        d(inputs_embeds), or None for ids."""
        if not self.needs_gradient():
            return None
        dx = self.LayerNorm.backward(self.dropout.backward(dout))  # (B, T, C), the sum's gradient
        dpos = xp.where((self.positions == self.pad_token_id)[..., None], 0.0, dx)
        self.position_embeddings.backward(dpos.sum(axis=0, keepdims=True) if self.from_embeds else dpos)
        return self.words_backward(dx)


class MPNetEncoder(BertEncoder):
    """BERT's layers, each adding b = relative_attention_bias(T) to its scores."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        # before the layers: its gradient is complete last, with the first layer's (data parallelism's buckets)
        self.relative_attention_bias = RelativePositionBias(cfg.relative_attention_num_buckets, cfg.num_attention_heads,
                                                            rng, std=cfg.initializer_range, dtype=dtype)
        super().__init__(cfg, rng, dropout_source, dtype)

    def forward(self, h, mask):
        return super().forward(h, mask, bias=self.relative_attention_bias(h.shape[1]))  # (1, H, T, T)

    def backward(self, dh, input_grad=True):
        """The layers' backward, then the bias's: every layer's d(bias) added into the one table."""
        dh = super().backward(dh, input_grad)
        self.relative_attention_bias.backward(xp.stack([layer.attention.self.dbias for layer in self.layer]))
        gradients_ready(self.relative_attention_bias)
        return dh


class MPNetModel(BertModel):
    """Embeddings + encoder + pooler: Hugging Face's MPNetModel; BertModel's backward.

    forward takes BertModel's arguments (token_type_ids is accepted and ignored: MPNet has no
    segments), so every BERT head and task runs it.
    """

    config_class, architecture = MPNetConfig, "MPNetModel"
    embeddings_class, encoder_class = MPNetEmbeddings, MPNetEncoder

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, inputs_embeds=None):
        """-> (sequence output (B, T, C), pooled <s> (B, C) or None without a pooler).

        attention_mask: (B, T), 1 for real tokens and 0 for padding, which no query attends to.
        """
        if input_ids is not None:
            input_ids = xp.asarray(input_ids)
        T = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]
        if T > self.max_positions:
            raise ValueError(f"sequence of {T} tokens is longer than MPNet's {self.max_positions} "
                             f"(max_position_embeddings={self.config.max_position_embeddings})")
        mask = combine_masks(T, T, padding_mask=attention_mask)  # (B, 1, 1, T) or None
        h = self.encoder(self.embeddings(input_ids, inputs_embeds), mask)
        return h, None if self.pooler is None else self.pooler(h)

    @staticmethod
    def state_from_checkpoint(tensors):
        return {n[len("mpnet."):]: a for n, a in hf_mpnet_state(tensors).items() if n.startswith("mpnet.")}

    def checkpoint_state(self):
        return {hf_name(n): a for n, a in self.state_dict().items()}


def our_name(name):
    for theirs, ours in RENAMES:
        name = name.replace(theirs, ours)
    return name


def hf_name(name):
    for theirs, ours in RENAMES:
        name = name.replace(ours, theirs)
    return name


def hf_mpnet_state(tensors):
    """A transformers MPNet checkpoint's tensors under a task model's names: the body's under `mpnet.` (the
    bare MPNetModel that sentence-transformers saves has no prefix), the heads' (`lm_head.`, `classifier.`)
    as they are, the `position_ids` buffer left out."""
    heads = ("mpnet.", "lm_head.", "classifier.")
    return {our_name(n if n.startswith(heads) else "mpnet." + n): a for n, a in tensors.items()
            if not n.endswith("embeddings.position_ids")}
