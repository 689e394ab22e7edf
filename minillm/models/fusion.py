"""Two ways to decide something from a recording and an image together.

Both read the token states of the (frozen) speech and image towers, s: (B, Ts, C) and v: (B, Tv, C).

    cross-attention fusion (one pre-LN block whose attention reads the other modality):
        h = s + CrossAttn(LN_q(s), LN_c(v))          each speech token looks at the image's patches
        h = h + W_2 gelu(W_1 LN_m(h))                a feed-forward layer
        logits = mean_t(h) W_o^T + b_o

    late fusion (Baltrusaitis et al.'s taxonomy; the usual baseline):
        logits = W_2 gelu(W_1 [mean_t(s); mean_t(v)]) + b      the pooled embeddings, concatenated

Cross-attention can compare every speech token with every patch before pooling; late fusion sees one
summary vector of each and must compare them through its MLP.
"""

import dataclasses

from minillm.backend import xp
from minillm.checkpoint import Config, Pretrained
from minillm.nn.cross_attention import CrossAttention
from minillm.nn.layers import GELU, LayerNorm, Linear, Module


@dataclasses.dataclass
class FusionConfig(Config):
    required = ("fusion", "hidden_size", "num_attention_heads", "intermediate_size")
    checked = {"model_type": ("minillm-fusion",)}

    fusion: str = "cross"  # or "late"
    hidden_size: int = 64  # the towers' width C
    num_attention_heads: int = 4
    intermediate_size: int = 256
    num_labels: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")


def mean_tokens_backward(dpooled, T):
    """The gradient of mean_t(h): each of the T states gets dpooled / T."""
    return xp.broadcast_to(dpooled[:, None, :] / T, (dpooled.shape[0], T, dpooled.shape[1])).copy()


class CrossAttentionFusion(Pretrained, Module):
    config_class, architecture = FusionConfig, "CrossAttentionFusion"

    def __init__(self, cfg, dtype="float32", seed=0):
        self.config = cfg
        rng, C, eps, std = xp.random.default_rng(seed), cfg.hidden_size, cfg.layer_norm_eps, cfg.initializer_range
        self.ln_query, self.ln_context = LayerNorm(C, eps, dtype), LayerNorm(C, eps, dtype)
        self.cross = CrossAttention(C, cfg.num_attention_heads, rng, std=std, dtype=dtype)
        self.ln_mlp = LayerNorm(C, eps, dtype)
        self.fc = Linear(C, cfg.intermediate_size, rng, std=std, dtype=dtype)
        self.act = GELU("erf")
        self.proj = Linear(cfg.intermediate_size, C, rng, std=std, dtype=dtype)
        self.classifier = Linear(C, cfg.num_labels, rng, std=std, dtype=dtype)

    def forward(self, speech, image):  # (B, Ts, C), (B, Tv, C) -> (B, num_labels)
        h = speech + self.cross(self.ln_query(speech), self.ln_context(image))
        h = h + self.proj(self.act(self.fc(self.ln_mlp(h))))
        self.T = h.shape[1]
        return self.classifier(h.mean(axis=1))

    def backward(self, dlogits):
        """-> (dspeech, dimage)."""
        dh = mean_tokens_backward(self.classifier.backward(dlogits), self.T)  # (B, Ts, C)
        dh = dh + self.ln_mlp.backward(self.fc.backward(self.act.backward(self.proj.backward(dh))))
        dquery, dcontext = self.cross.backward(dh)
        return dh + self.ln_query.backward(dquery), self.ln_context.backward(dcontext)


class LateFusion(Pretrained, Module):
    config_class, architecture = FusionConfig, "LateFusion"

    def __init__(self, cfg, dtype="float32", seed=0):
        self.config = cfg
        rng, C, std = xp.random.default_rng(seed), cfg.hidden_size, cfg.initializer_range
        self.fc = Linear(2 * C, cfg.intermediate_size, rng, std=std, dtype=dtype)
        self.act = GELU("erf")
        self.classifier = Linear(cfg.intermediate_size, cfg.num_labels, rng, std=std, dtype=dtype)

    def forward(self, speech, image):  # (B, Ts, C), (B, Tv, C) -> (B, num_labels)
        self.shapes = speech.shape[1], image.shape[1]
        pooled = xp.concatenate([speech.mean(axis=1), image.mean(axis=1)], axis=1)  # (B, 2C)
        return self.classifier(self.act(self.fc(pooled)))

    def backward(self, dlogits):
        dpooled = self.fc.backward(self.act.backward(self.classifier.backward(dlogits)))  # (B, 2C)
        C = dpooled.shape[1] // 2
        Ts, Tv = self.shapes
        return mean_tokens_backward(dpooled[:, :C], Ts), mean_tokens_backward(dpooled[:, C:], Tv)


FUSIONS = {"cross": CrossAttentionFusion, "late": LateFusion}


def fusion_model(cfg, dtype="float32", seed=0):
    return FUSIONS[cfg.fusion](cfg, dtype, seed)
