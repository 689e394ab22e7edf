"""BERT's pretraining: the masked-LM and next-sentence heads, BertForPreTraining, and a local start.

    MLM:  scores = LN(gelu(h_L W_T + b_T)) W_word^T + b       decoder tied to the word embeddings
    NSP:  logits = pooled W_NSP^T + b_NSP                     (B, 2): 0 = B follows A, 1 = random B

h_L and pooled are BertModel's outputs (bert.py). The heads keep Hugging
Face's names (`cls.*`), so the checkpoints load in transformers as its
BertForPreTraining. start_local gives a fresh encoder's heads a position
prior, so that a short pretraining run learns more than word frequencies.
"""

from minillm.backend import xp
from minillm.checkpoint import Pretrained
from minillm.models.bert import BertConfig, BertModel, hf_bert_state
from minillm.nn import functional as F
from minillm.nn.layers import GELU, LayerNorm, Linear, Module, Parameter, RandomSource, gradients_ready


def start_local(model, amplitude=0.1, gain=2.0):
    """Give a freshly initialised BertModel heads that read a neighbour from the first step.

    BERT's positions are learned vectors started at random, so no head knows
    where its neighbours are, and Adam, moving each weight by about the
    learning rate a step, takes thousands of steps to build position-matching
    attention: a short run only learns word frequencies and the review's topic.
    Here the first 2K channels of every head (K = D / 8 pairs) start as
    sinusoids of the position, at angular frequencies w_k from 1 down to 1/20,

        p_t[2k] = A sin(w_k t),   p_t[2k + 1] = A cos(w_k t)          (0 in the other channels)

    and every layer's W_Q gains g I and W_K g R(s w_k) on those channels, R a
    rotation by the angle s w_k, s = -1 for even heads and +1 for odd ones, so
    that (rotating (sin, cos) by s w turns it into the position t - s)

        (W_Q p_i) . (W_K p_j)  ~  sum_k cos(w_k (i - j + s)),       largest at j = i + s:

    even heads look one token left, odd heads one right. Row 0, where [CLS]
    always sits, keeps no sinusoid: the summary that the NSP head and the
    classifiers read is not tied to its neighbour from the start; where it
    looks is left to training. The architecture and the checkpoint layout are
    BERT's unchanged; only the starting point differs (as XLNet's relative bias
    starts as ALiBi's penalty). The peak score grows as g^2 K / sqrt(D) =
    g^2 sqrt(D) / 8, so g is scaled by (64 / D)^(1/4) to keep the sharpness of
    D = 64 for other head widths. How A and g were chosen, and what the start
    does to pretraining: docs/DESIGN_NOTES.md and docs/RESULTS.md.
    """
    emb = model.embeddings.position_embeddings.weight.data  # (P, C)
    C = emb.shape[1]
    layers = list(model.encoder.layer)
    H = layers[0].attention.self.n_head
    D = C // H
    K = max(1, D // 8)
    gain = gain * (64 / D) ** 0.25
    freq = xp.geomspace(1.0, 0.05, K)  # (K,)
    angle = xp.arange(emb.shape[0])[:, None] * freq[None, :]  # (P, K): w_k t
    emb[...] = 0
    query = xp.zeros((C, C))
    key = xp.zeros((C, C))
    for h in range(H):
        s = -1.0 if h % 2 == 0 else 1.0
        ch = h * D + 2 * xp.arange(K)  # the sin channel of each pair; cos is ch + 1
        emb[1:, ch], emb[1:, ch + 1] = amplitude * xp.sin(angle[1:]), amplitude * xp.cos(angle[1:])  # not [CLS]'s
        cos, sin = xp.cos(s * freq), xp.sin(s * freq)
        query[ch, ch] = query[ch + 1, ch + 1] = 1.0
        key[ch, ch], key[ch, ch + 1], key[ch + 1, ch], key[ch + 1, ch + 1] = cos, -sin, sin, cos
    for layer in layers:
        attention = layer.attention.self
        attention.query.weight.data += (gain * query).astype(emb.dtype)  # (out, in), as Linear stores it
        attention.key.weight.data += (gain * key).astype(emb.dtype)


# ---------------------------------------------------------------- pretraining heads
class BertPredictionHeadTransform(Module):
    """`cls.predictions.transform`: LN(gelu(h W_T^T + b_T)) before the tied decoder."""

    def __init__(self, cfg, rng, dtype):
        self.dense = Linear(cfg.hidden_size, cfg.hidden_size, rng, std=cfg.initializer_range, dtype=dtype)
        self.transform_act_fn = GELU("erf")
        self.LayerNorm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, dtype=dtype)

    def forward(self, h):
        return self.LayerNorm(self.transform_act_fn(self.dense(h)))

    def backward(self, dy):
        return self.dense.backward(self.transform_act_fn.backward(self.LayerNorm.backward(dy)))


class BertLMPredictionHead(Module):
    """`cls.predictions`: scores = transform(h) W_word^T + b, one score per vocabulary entry.

    The decoder is the word-embedding table itself (passed in, not owned), so
    the MLM gradient and the embedding lookup's gradient add into one array.
    """

    def __init__(self, cfg, rng, dtype):
        self.transform = BertPredictionHeadTransform(cfg, rng, dtype)
        self.bias = Parameter(xp.zeros(cfg.vocab_size, dtype=dtype))

    def forward(self, h, word_embeddings):  # (..., C) -> (..., V)
        scores, cache = word_embeddings.logits_forward(self.transform(h), self.bias.data)
        self.cache = (cache, word_embeddings.weight)
        return scores

    def backward(self, dscores):
        cache, decoder = self.cache
        dt, dw, db = F.linear_backward(dscores, cache)
        decoder.accumulate(dw.T)  # the tied decoder's share of W_word's gradient
        self.bias.accumulate(db)
        return self.transform.backward(dt)


class BertPreTrainingHeads(Module):
    """`cls`: the masked-LM head on every (or every chosen) position, the NSP head on the pooled vector."""

    def __init__(self, cfg, rng, dtype):
        self.predictions = BertLMPredictionHead(cfg, rng, dtype)
        self.seq_relationship = Linear(cfg.hidden_size, 2, rng, std=cfg.initializer_range, dtype=dtype)


class BertForPreTraining(Pretrained, Module):
    """BERT with the masked-LM and next-sentence heads: Hugging Face's BertForPreTraining.

    Checkpoints are Hugging Face's: the tied decoder is not stored (transformers
    re-ties it on load). from_pretrained also takes a bare BertModel's
    directory (all-MiniLM-L6-v2's, say): the pretraining heads it lacks keep
    their fresh initialisation, listed in `model.fresh_parameters` and a warning.
    """

    config_class, architecture = BertConfig, "BertForPreTraining"
    state_from_checkpoint = staticmethod(hf_bert_state)
    missing_ok = True

    def __init__(self, cfg, seed=0, dtype="float32"):
        self.config = cfg
        self.dropout_rng = RandomSource(seed)
        init_rng = xp.random.default_rng(seed)
        self.bert = BertModel(cfg, init_rng, self.dropout_rng, dtype)
        self.cls = BertPreTrainingHeads(cfg, init_rng, dtype)

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, inputs_embeds=None,
                mlm_mask=None):
        """-> (MLM scores, NSP logits (B, 2)).

        The MLM scores are (B, T, V) for every position, or (N, V) for the N
        positions where mlm_mask (B, T) is True, in row-major order: BERT scores
        only the masked tokens, which saves most of the (.., C) x (C, V) product.
        """
        seq, pooled = self.bert(input_ids, token_type_ids, attention_mask, inputs_embeds)
        self.seq_shape = seq.shape
        self.mlm_mask = None if mlm_mask is None else xp.asarray(mlm_mask, dtype=bool)
        h = seq if self.mlm_mask is None else seq[self.mlm_mask]  # (N, C)
        scores = self.cls.predictions(h, self.bert.embeddings.word_embeddings)
        return scores, self.cls.seq_relationship(pooled)

    def backward(self, dscores, dnsp=None):
        """From d(MLM scores) and d(NSP logits) (None: MLM alone) down to the embedding tables."""
        dh = self.cls.predictions.backward(dscores)
        if self.mlm_mask is not None:  # scatter the chosen rows back into place
            dseq = xp.zeros(self.seq_shape, dtype=dh.dtype)
            dseq[self.mlm_mask] = dh  # each position chosen once, so assignment is a sum
            dh = dseq
        dpooled = None if dnsp is None else self.cls.seq_relationship.backward(dnsp)
        gradients_ready(self.cls)  # (not the tied decoder, which cls does not own)
        return self.bert.backward(dh, dpooled)
