"""The task model for a checkpoint: which class fine-tunes or runs a config.json (Hugging Face's Auto* idea).

A pretrained directory's config.json names its architecture family
(`model_type`: gpt2, bert, lstm_lm); a fine-tuned one names its exact class
(`architectures`). These tables map both to the classes here.
"""

import math
import os

from minillm.checkpoint import load_safetensors, read_json
from minillm.models.bert import BertModel
from minillm.models.gpt import GPT
from minillm.models.heads import (BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                                  GPTForSequenceClassification, GPTForTokenClassification,
                                  MPNetForSequenceClassification)
from minillm.models.lstm_classifier import LSTMForSequenceClassification
from minillm.models.mpnet import MPNetModel
from minillm.nn.quantized import QuantizationScheme, quantize_model

CLASSIFIERS = {"gpt2": GPTForSequenceClassification, "bert": BertForSequenceClassification,
               "mpnet": MPNetForSequenceClassification, "lstm_lm": LSTMForSequenceClassification}
TOKEN_CLASSIFIERS = {"gpt2": GPTForTokenClassification, "bert": BertForTokenClassification}
QUESTION_ANSWERERS = {"bert": BertForQuestionAnswering}
TASK_MODELS = {"ner": TOKEN_CLASSIFIERS, "qa": QUESTION_ANSWERERS}  # every other task: CLASSIFIERS
ENCODERS = {"bert": BertModel, "mpnet": MPNetModel}  # model_type -> the bare encoder (sentence embeddings)
# config.json's `architectures` -> the class that runs it (GPT, the encoders and every task model)
ARCHITECTURES = {c.architecture: c for c in (GPT, *ENCODERS.values(), *CLASSIFIERS.values(),
                                              *TOKEN_CLASSIFIERS.values(), *QUESTION_ANSWERERS.values())}


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
    """The longest input the model takes (an LSTM has no limit; MPNet's positions start after its padding index)."""
    return (getattr(config, "max_tokens", None) or getattr(config, "n_positions", None)
            or getattr(config, "max_position_embeddings", math.inf))


def load_encoder(directory):
    """The bare encoder (BertModel or MPNetModel, as config.json's model_type says) of a checkpoint directory,
    for sentence embeddings; a pretraining or task head in the file is not read."""
    config_path = os.path.join(directory, "config.json")
    kind = read_json(config_path).get("model_type")
    if kind not in ENCODERS:
        raise ValueError(f"{config_path}: model_type {kind!r} is not a sentence encoder here "
                         f"({', '.join(ENCODERS)})")
    return ENCODERS[kind].from_pretrained(directory)


def load_model(directory, model_class=None):
    """The model a checkpoint directory holds, quantized or not: the one loader of every command that runs one.

    model_class: the class to build (default: the one config.json's `architectures` names). A config.json
    with a `quantization_config` (written by minillm/efficiency/quantize.py) gets the same model with its
    layers quantized as recorded, then the stored int8/int4 tensors and their scales; anything else is
    model_class.from_pretrained. Errors name the file and the tensor.
    """
    config_path = os.path.join(directory, "config.json")
    config = read_json(config_path)
    if model_class is None:
        architecture = (config.get("architectures") or [None])[0]
        if architecture not in ARCHITECTURES:
            raise ValueError(f"{config_path}: architecture {architecture!r} is not one this can run "
                             f"({', '.join(ARCHITECTURES)})")
        model_class = ARCHITECTURES[architecture]
    if "quantization_config" not in config:
        return model_class.from_pretrained(directory)
    try:
        scheme = QuantizationScheme.from_dict(config["quantization_config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_path}: quantization_config: {err}") from None
    model = quantize_model(model_class.from_config_dict(config, config_path), scheme)  # shapes and dtypes
    path = os.path.join(directory, "model.safetensors")
    tensors = model.state_from_checkpoint(load_safetensors(path))
    own = model.state_dict()
    for name in sorted(set(own) & set(tensors)):
        if tensors[name].dtype != own[name].dtype:
            raise ValueError(f"{path}: tensor {name!r} is {tensors[name].dtype}, but {config_path}'s "
                             f"quantization_config makes it {own[name].dtype}")
    try:
        model.load_state_dict(tensors)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return model
