"""The tiny BERT and GPT-2 classifiers every PEFT test wraps, and their inputs (fixtures returning makers)."""

import pytest

from minillm.backend import xp
from minillm.models.bert import BertConfig
from minillm.models.gpt import GPTConfig
from minillm.models.heads import BertForSequenceClassification, GPTForSequenceClassification


def make_tiny(kind, seed=0, hidden=4):
    """A tiny float64 sequence classifier without dropout, every weight drawn at random."""
    if kind == "bert":
        cfg = BertConfig(vocab_size=9, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=8, max_position_embeddings=8, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
        model = BertForSequenceClassification(cfg, ["neg", "pos"], seed=seed, dtype="float64")
    else:
        cfg = GPTConfig(vocab_size=9, n_positions=8, n_embd=hidden, n_layer=2, n_head=2)
        model = GPTForSequenceClassification(cfg, ["neg", "pos"], seed=seed, dtype="float64")
    rng = xp.random.default_rng(seed)
    for name, p in model.named_parameters():
        p.data = (1.0 if name.endswith("weight") and p.data.ndim == 1 else 0.0) + rng.standard_normal(p.shape) * 0.5
    return model


def make_inputs(seed):
    rng = xp.random.default_rng(seed)
    ids = rng.integers(1, 9, (3, 5))
    mask = xp.ones((3, 5), dtype=xp.int64)
    mask[0, 3:] = 0
    return ids, mask


@pytest.fixture(scope="session")
def tiny():
    return make_tiny


@pytest.fixture(scope="session")
def inputs():
    return make_inputs
