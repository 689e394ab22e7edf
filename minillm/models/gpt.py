"""GPT: the GPT-2 architecture, with Hugging Face's parameter names and layouts.

    h_0 = W_te[idx] + W_pe[pos]                       token + learned position embeddings
    h_l = h_{l-1} + attn(ln_1(h_{l-1}))               pre-LN residual blocks
    h_l = h_l + mlp(ln_2(h_l)),  mlp(x) = gelu(x W_fc + b_fc) W_proj + b_proj
    logits = ln_f(h_L) W_te^T                         LM head tied to the token embedding

`model(idx)` returns logits (B, T, V); `model.backward(dlogits)` fills every
parameter's `.grad`, running the blocks in reverse, one call a layer.
"""

import dataclasses

from minillm.backend import xp
from minillm.checkpoint import Config, Pretrained
from minillm.nn import functional as F
from minillm.nn.attention import SelfAttention
from minillm.nn.layers import (GELU, Conv1D, Dropout, Embedding, LayerNorm, Module, ModuleList, RandomSource,
                               gradients_ready, init_std)
from minillm.nn.sampling import sample_next


@dataclasses.dataclass
class GPTConfig(Config):
    """Hyperparameters, named as in Hugging Face's GPT2Config."""

    required = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
    checked = {"model_type": ("gpt2",), "activation_function": ("gelu_new", "gelu_pytorch_tanh"),
               "tie_word_embeddings": (True,)}  # GPT-2's tanh GELU, the LM head tied to W_te

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int = None  # None means 4 * n_embd
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bos_token_id: int = None
    eos_token_id: int = None

    def to_dict(self):
        return {**super().to_dict(), "n_ctx": self.n_positions}  # GPT-2's first name for n_positions


class MLP(Module):
    """Position-wise feed-forward: c_fc (C -> 4C), tanh GELU, c_proj (4C -> C)."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        inner = cfg.n_inner or 4 * cfg.n_embd
        self.c_fc = Conv1D(cfg.n_embd, inner, rng, std=cfg.initializer_range, dtype=dtype)
        self.act = GELU("tanh")
        self.c_proj = Conv1D(inner, cfg.n_embd, rng, std=init_std(cfg.initializer_range, cfg.n_layer), dtype=dtype)
        self.dropout = Dropout(cfg.resid_pdrop, dropout_source)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))

    def backward(self, dy):
        return self.c_fc.backward(self.act.backward(self.c_proj.backward(self.dropout.backward(dy))))


class Block(Module):
    """Pre-LN Transformer block: x + attn(ln_1(x)), then + mlp(ln_2(.))."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        self.ln_1 = LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon, dtype=dtype)
        self.attn = SelfAttention(cfg.n_embd, cfg.n_head, rng, dropout_source, cfg.attn_pdrop, cfg.resid_pdrop,
                                  proj_std=init_std(cfg.initializer_range, cfg.n_layer), dtype=dtype)
        self.ln_2 = LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon, dtype=dtype)
        self.mlp = MLP(cfg, rng, dropout_source, dtype)

    def forward(self, x, padding_mask=None, mask=None, past=None, use_cache=False):
        a = self.attn(self.ln_1(x), causal=True, padding_mask=padding_mask, mask=mask, past=past, use_cache=use_cache)
        a, present = a if use_cache else (a, None)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return (x, present) if use_cache else x

    def backward(self, dx):
        # each residual branch adds its gradient to the one flowing straight through
        dx = dx + self.ln_2.backward(self.mlp.backward(dx))
        return dx + self.ln_1.backward(self.attn.backward(dx))


class GPTTransformer(Module):
    """Hugging Face's GPT2Model: wte, wpe, drop, h.{i}, ln_f; token ids -> hidden states."""

    def __init__(self, cfg, rng, dropout_source, dtype):
        self.n_positions = cfg.n_positions
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, rng, std=cfg.initializer_range, dtype=dtype)
        self.wpe = Embedding(cfg.n_positions, cfg.n_embd, rng, std=cfg.initializer_range, dtype=dtype)
        self.drop = Dropout(cfg.embd_pdrop, dropout_source)
        self.h = ModuleList([Block(cfg, rng, dropout_source, dtype) for _ in range(cfg.n_layer)])
        self.ln_f = LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon, dtype=dtype)

    def forward(self, idx, attention_mask=None, mask=None, past_key_values=None, use_cache=False,
                inputs_embeds=None):
        """idx: (B, T) token ids (or inputs_embeds (B, T, C) instead of the lookup) -> hidden states
        (B, T, C) after ln_f.

        attention_mask: (B, T_total) 1 for real tokens, 0 for padding.
        mask: an extra boolean mask broadcastable to (B, H, T, T_total).
        past_key_values / use_cache: the KV cache of generation (or prefix tuning's trained keys
        and values); with use_cache the call returns (hidden, presents).
        """
        self.from_embeds = inputs_embeds is not None
        words = inputs_embeds if self.from_embeds else self.wte(idx)  # (B, T, C)
        T = words.shape[1]
        t_past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        if t_past + T > self.n_positions:
            raise ValueError(f"sequence of {t_past + T} tokens is longer than n_positions={self.n_positions}")
        pos = xp.arange(t_past, t_past + T)[None, :]  # (1, T)
        x = self.drop(words + self.wpe(pos))  # (B, T, C)
        presents = []
        for i, block in enumerate(self.h):
            past = None if past_key_values is None else past_key_values[i]
            x = block(x, padding_mask=attention_mask, mask=mask, past=past, use_cache=use_cache)
            if use_cache:
                x, present = x
                presents.append(present)
        x = self.ln_f(x)
        return (x, presents) if use_cache else x

    def backward(self, dx):
        """From dloss/dhidden (B, T, C) down to the embedding tables; returns d(inputs_embeds), or None for ids."""
        dx = self.ln_f.backward(dx)
        gradients_ready(self.ln_f)  # (data parallelism may start summing these gradients over the ranks)
        for block in reversed(list(self.h)):
            dx = block.backward(dx)
            gradients_ready(block)
        dx = self.drop.backward(dx)
        self.wpe.backward(dx.sum(axis=0, keepdims=True))  # positions are shared across the batch
        if self.from_embeds:
            return dx
        self.wte.backward(dx)
        return None


def hf_gpt2_state(tensors):
    """Hugging Face GPT-2 tensors under our names.

    Checkpoints saved from GPT2Model lack the `transformer.` prefix; older ones
    carry the causal-mask buffers `attn.bias` / `attn.masked_bias`, which are
    not parameters; `lm_head.weight`, when present, must equal the tied W_te.
    """
    state = {}
    for name, a in tensors.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if name == "lm_head.weight":
            continue
        state[name if name.startswith("transformer.") else "transformer." + name] = a
    head = tensors.get("lm_head.weight")
    wte = state.get("transformer.wte.weight")
    if head is not None and wte is not None and not (head.shape == wte.shape and (head == wte).all()):
        raise ValueError("lm_head.weight differs from transformer.wte.weight; GPT here ties them")
    return state


class GPT(Pretrained, Module):
    """GPT2LMHeadModel. The LM head is W_te itself (tied), so it owns no parameter.

    Checkpoints are Hugging Face's GPT2LMHeadModel's (see hf_gpt2_state for what loading accepts).
    """

    config_class, architecture = GPTConfig, "GPT2LMHeadModel"
    state_from_checkpoint = staticmethod(hf_gpt2_state)

    def __init__(self, cfg, seed=0, dtype="float32"):
        self.config = cfg
        self.dropout_rng = RandomSource(seed)
        init_rng = xp.random.default_rng(seed)
        self.transformer = GPTTransformer(cfg, init_rng, self.dropout_rng, dtype)

    def forward(self, idx, attention_mask=None, mask=None, past_key_values=None, use_cache=False):
        """idx: (B, T) token ids -> logits (B, T, V) = hidden W_te^T (see GPTTransformer.forward)."""
        h = self.transformer(idx, attention_mask, mask, past_key_values, use_cache)
        h, presents = h if use_cache else (h, None)
        logits, self.head_cache = self.transformer.wte.logits_forward(h)  # (B, T, V) = h W_te^T
        return (logits, presents) if use_cache else logits

    def backward(self, dlogits):
        """From dloss/dlogits (B, T, V) down to the embedding tables, filling every .grad."""
        dh, dw_head, _ = F.linear_backward(dlogits, self.head_cache)
        self.transformer.wte.weight.accumulate(dw_head.T)  # the tied head's share of W_te's gradient
        self.transformer.backward(dh)

    # ------------------------------------------------------------ generation
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, rng=None):
        """Sample max_new_tokens after idx (B, T) with a KV cache: O(T) work per new token.

        When the cache reaches n_positions, it is rebuilt from the last half
        block (learned positions cannot slide), which keeps the cost amortised.
        """
        rng = rng or xp.random.default_rng(0)
        was_training = self.training
        self.eval()
        window = self.config.n_positions
        out = idx
        context = idx[:, -window:]
        logits, past = self(context, past_key_values=None, use_cache=True)
        for _ in range(max_new_tokens):
            next_id = sample_next(logits[:, -1, :], temperature, top_k, rng)  # (B, 1)
            out = xp.concatenate([out, next_id], axis=1)
            if past[0][0].shape[2] + 1 > window:  # full: start again from the recent context
                logits, past = self(out[:, -(window // 2):], use_cache=True)
            else:
                logits, past = self(next_id, past_key_values=past, use_cache=True)
        self.train(was_training)
        return out
