"""The tiny BERT and GPT-2 task models every PEFT test wraps, and their inputs (fixtures returning makers)."""

import pytest

from minillm.backend import xp
from minillm.models.bert import BertConfig
from minillm.models.gpt import GPTConfig
from minillm.models.heads import (BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                                  GPTForSequenceClassification, GPTForTokenClassification)

TASK_MODELS = {("bert", "seq"): BertForSequenceClassification, ("gpt", "seq"): GPTForSequenceClassification,
               ("bert", "token"): BertForTokenClassification, ("gpt", "token"): GPTForTokenClassification,
               ("bert", "qa"): BertForQuestionAnswering}


def make_tiny(kind, seed=0, hidden=4, task="seq"):
    """A tiny float64 task model without dropout, every weight drawn at random."""
    if kind == "bert":
        cfg = BertConfig(vocab_size=9, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=8, max_position_embeddings=8, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    else:
        cfg = GPTConfig(vocab_size=9, n_positions=8, n_embd=hidden, n_layer=2, n_head=2)
    labels = ["LABEL_0", "LABEL_1"] if task == "qa" else ["neg", "pos"] if task == "seq" else ["O", "B", "I"]
    model = TASK_MODELS[kind, task](cfg, labels, seed=seed, dtype="float64")
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


def run_outputs(model, ids, mask):
    """The model's outputs as one array (QA's start and end logits stacked last)."""
    out = model(ids, mask)
    return xp.stack(out, axis=-1) if isinstance(out, tuple) else out


def run_backward(model, dout):
    return model.backward(dout[..., 0], dout[..., 1]) if model.architecture.endswith("QuestionAnswering") \
        else model.backward(dout)


@pytest.fixture(scope="session")
def tiny():
    return make_tiny


@pytest.fixture(scope="session")
def inputs():
    return make_inputs


@pytest.fixture(scope="session")
def outputs():
    return run_outputs


@pytest.fixture(scope="session")
def backward():
    return run_backward
