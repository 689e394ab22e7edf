"""CLIP (Radford et al. 2021) for digits: a text tower and an image or speech tower in one space.

    v = normalize(mean_t BertModel(caption)_t  W_T^T)       text: small BERT over WordPiece ids, mean over tokens
    u = normalize(mean_t PatchEncoder(x)_t  W_M^T)         image (ViT) or log-mel spectrogram: the mean of
                                                           all states, or the [CLS] state (media_pooling)
    s = exp(logit_scale)                                   the learned inverse temperature (nn/contrastive.py)

The towers share a width, depth and head count (one config); the projections have no bias, as in
CLIP. Names follow Hugging Face's CLIPModel (`text_model`, `vision_model`, `text_projection`,
`visual_projection`, `logit_scale`) and, for speech, CLAP's (`audio_model`, `audio_projection`).
`MediaClassifier` is the supervised baseline: the same image or speech tower with a linear head.
"""

import dataclasses

from minillm.backend import xp
from minillm.checkpoint import Config, Pretrained
from minillm.models.bert import BertConfig, BertModel
from minillm.models.patch_encoder import PatchEncoder, patch_grid
from minillm.nn import functional as F
from minillm.nn.contrastive import l2_normalize_backward, l2_normalize_forward
from minillm.nn.layers import Linear, Module, Parameter, RandomSource

MEDIA = {"image": ("vision_model", "visual_projection", "image"),  # (tower, projection, patch kind)
         "speech": ("audio_model", "audio_projection", "time")}


@dataclasses.dataclass
class CLIPConfig(Config):
    required = ("modality", "input_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "text_vocab_size", "text_max_positions", "projection_dim")
    checked = {"model_type": ("minillm-clip",)}

    modality: str = "image"  # or "speech"
    input_size: tuple = (28, 28)  # (H, W) of an image, (frames, mel bands) of a spectrogram
    patch_size: int = 7
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    text_vocab_size: int = 140  # WordPiece over the captions; id 0 is [PAD]
    text_max_positions: int = 16
    projection_dim: int = 64
    logit_scale_init_value: float = 2.6592  # log(1 / 0.07), CLIP's start
    media_pooling: str = "mean"  # the mean of all the tower's states, or "cls": its [CLS] state
    num_labels: int = 10  # MediaClassifier's classes
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        if self.modality not in MEDIA:
            raise ValueError(f"modality must be one of {', '.join(MEDIA)}, got {self.modality!r}")
        if self.media_pooling not in ("cls", "mean"):
            raise ValueError(f"media_pooling must be 'cls' or 'mean', got {self.media_pooling!r}")
        self.input_size = tuple(self.input_size)
        a, b = self.input_size
        p = self.patch_size
        if a % p or (self.modality == "image" and b % p):
            raise ValueError(f"input_size {self.input_size} does not divide into patches of {p}")

    def tower(self, vocab_size, max_positions):
        """The BertConfig of one tower: no dropout, no segments; id 0 pads."""
        return BertConfig(vocab_size=vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                          num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
                          hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          max_position_embeddings=max_positions, type_vocab_size=1, layer_norm_eps=self.layer_norm_eps,
                          initializer_range=self.initializer_range, pad_token_id=0)

    def media_tower(self, rng, dropout_source, dtype):
        n_patches = patch_grid(MEDIA[self.modality][2], self.input_size, self.patch_size)[0]
        return PatchEncoder(MEDIA[self.modality][2], self.input_size, self.patch_size, self.tower(1, n_patches + 1),
                            rng, dropout_source, dtype)


class MediaTower:
    """The pooled features of the image or speech tower (named after the modality) and their backward."""

    def media_model(self):
        return getattr(self, MEDIA[self.config.modality][0])

    def media_features(self, x):
        """(B, C): the image or speech tower's [CLS] state, or the mean of all its states (media_pooling)."""
        h = self.media_model()(xp.asarray(x))  # (B, N + 1, C)
        self.media_states, self._media_shape = h, h.shape  # every token's state, for fusion (models/fusion.py)
        return h[:, 0] if self.config.media_pooling == "cls" else h.mean(axis=1)

    def media_features_backward(self, dfeatures):
        B, T, C = self._media_shape
        if self.config.media_pooling == "cls":
            dh = xp.zeros(self._media_shape, dtype=dfeatures.dtype)
            dh[:, 0] = dfeatures  # only the [CLS] position was read
        else:
            dh = xp.broadcast_to(dfeatures[:, None, :] / T, (B, T, C)).copy()  # each of T states weighs 1/T
        self.media_model().backward(dh)


class CLIPModel(MediaTower, Pretrained, Module):
    config_class, architecture = CLIPConfig, "CLIPModel"

    def __init__(self, cfg, dtype="float32", seed=0):
        self.config = cfg
        rng, source = xp.random.default_rng(seed), RandomSource(seed)
        C, D = cfg.hidden_size, cfg.projection_dim
        self.text_model = BertModel(cfg.tower(cfg.text_vocab_size, cfg.text_max_positions), rng, source, dtype,
                                    add_pooling_layer=False)
        self.text_projection = Linear(C, D, rng, std=cfg.initializer_range, bias=False, dtype=dtype)
        tower, projection, _ = MEDIA[cfg.modality]
        setattr(self, tower, cfg.media_tower(rng, source, dtype))
        setattr(self, projection, Linear(C, D, rng, std=cfg.initializer_range, bias=False, dtype=dtype))
        self.logit_scale = Parameter(xp.full((), cfg.logit_scale_init_value, dtype=dtype))

    def media_projection(self):
        return getattr(self, MEDIA[self.config.modality][1])

    def encode_media(self, x):
        """(B, ...) images or spectrograms -> (B, D) unit vectors."""
        u, self._media_norm = l2_normalize_forward(self.media_projection()(self.media_features(x)))
        return u

    def backward_media(self, du):
        self.media_features_backward(self.media_projection().backward(l2_normalize_backward(du, self._media_norm)))

    def encode_text(self, ids, mask):
        """(B, T) token ids with their attention mask -> (B, D) unit vectors."""
        h, _ = self.text_model(ids, attention_mask=mask)  # (B, T, C)
        pooled, self._text_weights = F.masked_mean_forward(h, mask)  # (B, C)
        v, self._text_norm = l2_normalize_forward(self.text_projection(pooled))
        return v

    def backward_text(self, dv):
        dpooled = self.text_projection.backward(l2_normalize_backward(dv, self._text_norm))
        self.text_model.backward(F.masked_mean_backward(dpooled, self._text_weights))


class MediaClassifier(MediaTower, Pretrained, Module):
    """The supervised baseline: logits = pool(PatchEncoder(x)) W^T + b, the tower (and pooling) CLIPModel uses."""

    config_class, architecture = CLIPConfig, "MediaClassifier"

    def __init__(self, cfg, dtype="float32", seed=0):
        self.config = cfg
        rng, source = xp.random.default_rng(seed), RandomSource(seed)
        setattr(self, MEDIA[cfg.modality][0], cfg.media_tower(rng, source, dtype))
        self.classifier = Linear(cfg.hidden_size, cfg.num_labels, rng, std=cfg.initializer_range, dtype=dtype)

    def forward(self, x):  # -> (B, num_labels)
        return self.classifier(self.media_features(x))

    def backward(self, dlogits):
        self.media_features_backward(self.classifier.backward(dlogits))
