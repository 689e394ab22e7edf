"""What every parameter-efficient method shares: a frozen backbone, a trained head, named adapters, PEFT's files.

A task model (models/heads.py) is a backbone (`bert` or `transformer`) and a
head (`classifier`, `score` or `qa_outputs`). Fine-tuning a few parameters
freezes the backbone (Parameter.requires_grad False: no gradient, no optimizer
moments) and trains the head in full, as Hugging Face PEFT's `modules_to_save`.

Methods wrap parts of the model in modules that keep named adapters (nn/lora.py's
LoRALinear, nn/adapter.py's BottleneckAdapter, peft/prompt.py's and
peft/prefix.py's backbone wrappers): each has `adapters` {name: its parameters}
and `set_adapter(name)`. The model keeps `peft_adapters` {name: the method, its
settings, its head's arrays}; set_adapter switches every wrapper and the head
at once, so several adapters share one loaded base.

An adapter directory is PEFT's: adapter_config.json and
adapter_model.safetensors, whose tensors are named as in the model PEFT wraps:
`base_model.model.<name in the task model>` for the methods PEFT injects into
the layers (LoRA), `base_model.<name>` for prompt learning, whose one tensor
`prompt_embeddings` has no prefix:

    base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight
    base_model.model.classifier.weight
    prompt_embeddings, base_model.classifier.weight
"""

import os

from minillm.backend import xp
from minillm.checkpoint import load_safetensors, read_json, save_directory_atomically, save_safetensors, write_json
from minillm.nn.layers import Conv1D, Linear

TUNER_PREFIX, PROMPT_PREFIX = "base_model.model.", "base_model."
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


# ---------------------------------------------------------------- which layers a method wraps
def linear_layers(model):
    """{name in the task model: layer} of the backbone's Linear and Conv1D layers, or the wrappers around
    them (a module with a `base_layer`), but not the layers inside a wrapper."""
    backbone = backbone_name(model)
    found = {}
    for name, module in model.named_modules():
        inside = any(name.startswith(wrapper + ".") for wrapper in found)  # a base_layer, an adapter's own
        if (name.startswith(backbone + ".") and not inside
                and (isinstance(module, (Linear, Conv1D)) or hasattr(module, "base_layer"))):
            found[name] = module
    return found


def target_layers(model, target_modules, what="target modules", also=()):
    """The layers target_modules names, as PEFT matches `target_modules`: a layer's name is one of them
    or ends with "." and one of them (`query`, `attention.self.value`). An unknown name is an error
    listing the valid ones (and `also`, other names the caller accepts)."""
    layers = linear_layers(model)
    valid = sorted({name.rsplit(".", 1)[-1] for name in layers})
    unknown = [t for t in target_modules if not any(n == t or n.endswith("." + t) for n in layers)]
    if unknown or not target_modules:
        raise ValueError(f"unknown {what} {unknown}; this model's linear layers are {', '.join(valid)}"
                         + (f" (or {', '.join(also)})" if also else ""))
    return {n: m for n, m in layers.items() if any(n == t or n.endswith("." + t) for t in target_modules)}


def set_module(model, dotted, module):
    """Put `module` where the dotted name points (the parent reached attribute by attribute)."""
    parent, _, name = dotted.rpartition(".")
    for part in parent.split(".") if parent else []:
        model = getattr(model, part)
    setattr(model, name, module)


def wrapped(model, wrapper_class):
    """{name: module} of the model's wrappers of one class (a method's modules)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, wrapper_class)}


# ---------------------------------------------------------------- named adapters over one base
def begin_adapter(model, name, method):
    """Before a method adds adapter `name`: the first adapter freezes the backbone; a later one must be
    of the same method and a new name. Returns the model's adapters {name: settings}."""
    adapters = getattr(model, "peft_adapters", None)
    if adapters is None:
        freeze_backbone(model)
        adapters = model.peft_adapters = {}
    elif name in adapters:
        raise ValueError(f"the model already has an adapter named {name!r}")
    elif any(a["method"] != method for a in adapters.values()):
        raise ValueError(f"adapters over one base must be of one method: the model has "
                         f"{next(iter(adapters.values()))['method']}, not {method}")
    stash_head(model)
    return adapters


def end_adapter(model, name, method, **settings):
    """After a method added adapter `name`: record it, with the head as it is now, and make it active."""
    model.peft_adapters[name] = {"method": method, **settings, "head": head_state(model)}
    model.active_adapter = name


def head_state(model):
    return {n: p.data for h in head_names(model) for n, p in getattr(model, h).named_parameters(h + ".")}


def stash_head(model):
    """Keep the active adapter's head as it is now (the optimizer may have moved its arrays)."""
    if getattr(model, "active_adapter", None) in getattr(model, "peft_adapters", {}):
        model.peft_adapters[model.active_adapter]["head"] = head_state(model)


def set_adapter(model, name):
    """Make adapter `name` (and its head) the one the model runs, without reloading anything."""
    adapters = getattr(model, "peft_adapters", {})
    if name not in adapters:
        raise ValueError(f"no adapter {name!r}; the model has {', '.join(adapters) or 'none'}")
    stash_head(model)
    for _, module in model.named_modules():
        if hasattr(module, "adapters") and hasattr(module, "set_adapter"):
            module.set_adapter(name)
    own = dict(model.named_parameters())
    for n, a in adapters[name]["head"].items():
        own[n].data = a
    model.active_adapter = name


def active_settings(model):
    return model.peft_adapters[model.active_adapter]


def virtual_tokens(model):
    """Positions the active adapter puts before the tokens (prompt and prefix tuning), else 0."""
    adapters = getattr(model, "peft_adapters", None)
    return active_settings(model).get("num_virtual_tokens", 0) if adapters else 0


# ---------------------------------------------------------------- PEFT's adapter directory
def save_adapter_files(directory, model, config, tensors, prefix=TUNER_PREFIX, bare=()):
    """adapter_config.json + adapter_model.safetensors ({name in the task model: array}; the names in
    `bare` are written as they are, the others under `prefix`), atomically; beside them the task
    model's config.json (architecture, labels), which PEFT ignores and `finetune.py --adapter-dir` reads."""
    def write(tmp):
        write_json(os.path.join(tmp, "adapter_config.json"), config)
        write_json(os.path.join(tmp, "config.json"), model.config_dict())
        save_safetensors(os.path.join(tmp, "adapter_model.safetensors"),
                         {n if n in bare else prefix + n: a for n, a in tensors.items()}, {"format": "pt"})

    save_directory_atomically(directory, write)


def read_adapter_files(directory, prefix=TUNER_PREFIX, bare=()):
    """(adapter_config.json, {name in the task model: array}) of an adapter directory."""
    config = read_json(os.path.join(directory, "adapter_config.json"))
    path = os.path.join(directory, "adapter_model.safetensors")
    tensors = load_safetensors(path)
    outside = sorted(n for n in tensors if not n.startswith(prefix) and n not in bare)
    if outside:
        raise ValueError(f"{path}: tensors not under {prefix!r}, so not PEFT's layout for "
                         f"{config.get('peft_type')}: {outside}")
    return config, {n if n in bare else n[len(prefix):]: a for n, a in tensors.items()}


def check_peft_type(directory, config, expected):
    if config.get("peft_type") != expected:
        raise ValueError(f"{directory}/adapter_config.json: peft_type {config.get('peft_type')!r}, not {expected}")


def check_tensor(path, name, array, shape):
    """An adapter's tensor must have a place in this model (shape, not None) of that shape; errors name it."""
    if shape is None:
        raise ValueError(f"{path}: tensor {name} has no place in this model (an adapter for another base?)")
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{path}: tensor {name} has shape {tuple(array.shape)}; this model's is "
                         f"{tuple(shape)} (an adapter for another base?)")


def fill_adapter(model, name, path, tensors, params, prefix=TUNER_PREFIX, bare=()):
    """Copy a directory's tensors into adapter `name` (just added, active): `params` {name in the file:
    Parameter} are the method's own, the head's are found by name. A tensor with no place or another
    shape, or a missing one, is an error naming it (as the file does: under `prefix` unless in `bare`)."""
    params = {**params, **{n: p for h in head_names(model) for n, p in getattr(model, h).named_parameters(h + ".")}}
    shown = {n: n if n in bare else prefix + n for n in {*tensors, *params}}
    for n, a in tensors.items():
        check_tensor(path, shown[n], a, params[n].shape if n in params else None)
    missing = sorted(set(params) - set(tensors))
    if missing:
        raise ValueError(f"{path}: lacks tensors this model's adapter needs: {', '.join(shown[n] for n in missing)}")
    for n, a in tensors.items():
        params[n].data = xp.asarray(a, dtype=params[n].data.dtype).copy()
    model.peft_adapters[name]["head"] = head_state(model)
    return model
