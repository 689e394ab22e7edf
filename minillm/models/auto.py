"""The task model for a checkpoint: which class fine-tunes or runs a config.json (Hugging Face's Auto* idea).

A pretrained directory's config.json names its architecture family
(`model_type`: gpt2, bert, lstm_lm); a fine-tuned one names its exact class
(`architectures`). These tables map both to the classes here.
"""

import math

from minillm.models.heads import (BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                                  GPTForSequenceClassification, GPTForTokenClassification)
from minillm.models.lstm_classifier import LSTMForSequenceClassification

CLASSIFIERS = {"gpt2": GPTForSequenceClassification, "bert": BertForSequenceClassification,
               "lstm_lm": LSTMForSequenceClassification}
TOKEN_CLASSIFIERS = {"gpt2": GPTForTokenClassification, "bert": BertForTokenClassification}
QUESTION_ANSWERERS = {"bert": BertForQuestionAnswering}
TASK_MODELS = {"ner": TOKEN_CLASSIFIERS, "qa": QUESTION_ANSWERERS}  # every other task: CLASSIFIERS


def build_model(classes, config, label_names, pad_token_id, dropout, seed, pooling="mean"):
    """The task model, from `classes` ({model_type: class}), of the architecture a config.json describes.

    pooling: the LSTM's ("mean" or "last"); GPT reads its last token, BERT its [CLS].
    """
    kind = config.get("model_type")
    if kind not in classes:
        raise ValueError(f"config.json model_type {kind!r}: this task supports {', '.join(classes)}")
    cfg = classes[kind].config_class.from_dict(config)
    if kind == "gpt2":
        cfg.resid_pdrop = cfg.embd_pdrop = cfg.attn_pdrop = dropout
    elif kind == "lstm_lm":
        cfg.dropout, cfg.pooling = dropout, pooling
    else:
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    return classes[kind](cfg, label_names, pad_token_id, seed=seed)


def max_positions(config):
    """The longest input the model takes (an LSTM has no limit)."""
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", math.inf)
