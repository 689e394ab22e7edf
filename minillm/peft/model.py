"""What every parameter-efficient method shares: a frozen backbone, a trained head, PEFT's files.

A task model (models/heads.py) is a backbone (`bert` or `transformer`) and a
head (`classifier`, `score` or `qa_outputs`). Fine-tuning a few parameters
freezes the backbone (Parameter.requires_grad False: no gradient, no optimizer
moments) and trains the head in full, as Hugging Face PEFT's `modules_to_save`.

An adapter directory is PEFT's: adapter_config.json and
adapter_model.safetensors, whose tensors are named as in the model that PEFT
wraps, `base_model.model.<name in the task model>`:

    base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight
    base_model.model.classifier.weight
"""

import os

from minillm.checkpoint import load_safetensors, read_json, save_directory_atomically, save_safetensors, write_json

PREFIX = "base_model.model."
BACKBONES = ("bert", "transformer")
TASK_TYPES = {"ForSequenceClassification": "SEQ_CLS", "ForTokenClassification": "TOKEN_CLS",
              "ForQuestionAnswering": "QUESTION_ANS"}  # architecture suffix -> PEFT's task_type


def backbone_name(model):
    names = [name for name, _ in model.children() if name in BACKBONES]
    if len(names) != 1:
        raise ValueError(f"{type(model).__name__}: parameter-efficient fine-tuning needs a BERT or GPT-2 task model")
    return names[0]


def head_names(model):
    """The task head's modules: every child with parameters but the backbone (PEFT's modules_to_save)."""
    backbone = backbone_name(model)
    return [name for name, child in model.children() if name != backbone and child.parameters()]


def freeze_backbone(model):
    """Freeze everything, then unfreeze the head; returns the model."""
    model.requires_grad_(False)
    for name in head_names(model):
        getattr(model, name).requires_grad_(True)
    return model


def task_type(model):
    return next(t for suffix, t in TASK_TYPES.items() if model.architecture.endswith(suffix))


def save_adapter_files(directory, config, tensors):
    """adapter_config.json + adapter_model.safetensors ({name in the task model: array}), atomically."""
    def write(tmp):
        write_json(os.path.join(tmp, "adapter_config.json"), config)
        save_safetensors(os.path.join(tmp, "adapter_model.safetensors"), {PREFIX + n: a for n, a in tensors.items()},
                         {"format": "pt"})

    save_directory_atomically(directory, write)


def read_adapter_files(directory):
    """(adapter_config.json, {name in the task model: array}) of an adapter directory."""
    config = read_json(os.path.join(directory, "adapter_config.json"))
    path = os.path.join(directory, "adapter_model.safetensors")
    tensors = load_safetensors(path)
    outside = sorted(n for n in tensors if not n.startswith(PREFIX))
    if outside:
        raise ValueError(f"{path}: tensors not under {PREFIX!r}, so not PEFT's layout: {outside}")
    return config, {n[len(PREFIX):]: a for n, a in tensors.items()}


def check_tensor(path, name, array, shape):
    """An adapter's tensor must have a place in this model (shape, not None) of that shape; errors name it."""
    if shape is None:
        raise ValueError(f"{path}: tensor {PREFIX + name} has no place in this model (an adapter for another base?)")
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{path}: tensor {PREFIX + name} has shape {tuple(array.shape)}; this model's is "
                         f"{tuple(shape)} (an adapter for another base?)")
