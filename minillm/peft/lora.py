"""LoRA over a BERT or GPT-2 task model: which layers get adapters, several adapters, merging, PEFT's files.

    add_lora(model, r, alpha, dropout, targets)   freeze the backbone, wrap each target in nn/lora.LoRALinear
    save_lora(model, dir) / load_lora(model, dir, name)   PEFT's adapter_config.json + adapter_model.safetensors
    set_adapter(model, name)                      switch adapter (and its head) without reloading the base
    merge_lora(model)                             W += (alpha / r) (B A): a plain model again

Targets are matched as PEFT matches `target_modules`: a layer is a target
when its name is one of them or ends with "." and one of them (`query`,
`attention.self.value`), or every linear layer of the backbone for
"all-linear". Each adapter keeps its own head (PEFT's modules_to_save).
"""

from minillm.backend import xp
from minillm.nn.layers import Conv1D, Linear
from minillm.nn.lora import LoRALinear
from minillm.peft.model import (backbone_name, check_tensor, freeze_backbone, head_names, read_adapter_files,
                                save_adapter_files, task_type)

ALL_LINEAR = "all-linear"


def linear_layers(model):
    """{name in the task model: layer} of the backbone's Linear, Conv1D and LoRALinear layers."""
    backbone = backbone_name(model)
    found = {}
    for name, module in model.named_modules():
        inside_lora = any(name.startswith(wrapped + ".") for wrapped in found)  # a LoRALinear's base_layer
        if name.startswith(backbone + ".") and isinstance(module, (Linear, Conv1D, LoRALinear)) and not inside_lora:
            found[name] = module
    return found


def target_layers(model, target_modules):
    """The layers target_modules names; an unknown name is an error listing the valid ones."""
    layers = linear_layers(model)
    if list(target_modules) == [ALL_LINEAR]:
        return layers
    valid = sorted({name.rsplit(".", 1)[-1] for name in layers})
    unknown = [t for t in target_modules if not any(n == t or n.endswith("." + t) for n in layers)]
    if unknown or not target_modules:
        raise ValueError(f"unknown LoRA target modules {unknown}; this model's linear layers are "
                         f"{', '.join(valid)} (or {ALL_LINEAR})")
    return {n: m for n, m in layers.items() if any(n == t or n.endswith("." + t) for t in target_modules)}


def set_module(model, dotted, module):
    """Put `module` where the dotted name points (the parent reached attribute by attribute)."""
    parent, _, name = dotted.rpartition(".")
    for part in parent.split("."):
        model = getattr(model, part)
    setattr(model, name, module)


def add_lora(model, r=8, alpha=16, dropout=0.1, target_modules=("query", "value"), name="default", seed=0):
    """Freeze the backbone and add adapter `name` (made active) to the target layers; returns the model.

    A second adapter must target the layers the first did; it starts with the head as it is now.
    """
    layers = target_layers(model, target_modules)
    adapters = getattr(model, "lora_adapters", None)
    if adapters is None:
        freeze_backbone(model)
        adapters = model.lora_adapters = {}
    elif name in adapters:
        raise ValueError(f"the model already has a LoRA adapter named {name!r}")
    elif set(layers) != set(next(iter(adapters.values()))["layers"]):
        raise ValueError("LoRA adapters over one base must target the same layers")
    rng = xp.random.default_rng(seed)
    for dotted, layer in layers.items():
        if not isinstance(layer, LoRALinear):
            layer = LoRALinear(layer, model.random_source())
            set_module(model, dotted, layer)
        layer.add_adapter(name, r, alpha, dropout, rng)
    stash_head(model)
    adapters[name] = {"layers": sorted(layers), "r": r, "alpha": alpha, "dropout": dropout,
                      "target_modules": list(target_modules), "head": head_state(model)}
    model.active_adapter = name
    return model


def head_state(model):
    return {n: p.data for h in head_names(model) for n, p in getattr(model, h).named_parameters(h + ".")}


def stash_head(model):
    """Keep the active adapter's head as it is now (the optimizer may have moved its arrays)."""
    if getattr(model, "active_adapter", None) in model.lora_adapters:
        model.lora_adapters[model.active_adapter]["head"] = head_state(model)


def set_adapter(model, name):
    """Make adapter `name` (and its head) the one the model runs, without reloading anything."""
    if name not in model.lora_adapters:
        raise ValueError(f"no LoRA adapter {name!r}; the model has {', '.join(model.lora_adapters)}")
    stash_head(model)
    for layer in linear_layers(model).values():
        if isinstance(layer, LoRALinear):
            layer.set_adapter(name)
    own = dict(model.named_parameters())
    for n, a in model.lora_adapters[name]["head"].items():
        own[n].data = a
    model.active_adapter = name


def adapter_tensors(model):
    """The active adapter's tensors under PEFT's names (without base_model.model.): A, B and the head."""
    out = {}
    for dotted, layer in linear_layers(model).items():
        if isinstance(layer, LoRALinear):
            out[f"{dotted}.lora_A.weight"], out[f"{dotted}.lora_B.weight"] = layer.lora_A.data, layer.lora_B.data
    return {**out, **head_state(model)}


def adapter_config(model, base_model_name_or_path=None):
    """adapter_config.json of the active adapter, with the keys PEFT's LoraConfig reads."""
    a = model.lora_adapters[model.active_adapter]
    return {"peft_type": "LORA", "task_type": task_type(model), "base_model_name_or_path": base_model_name_or_path,
            "r": a["r"], "lora_alpha": a["alpha"], "lora_dropout": a["dropout"],
            "target_modules": a["target_modules"], "fan_in_fan_out": backbone_name(model) == "transformer",
            "bias": "none", "modules_to_save": head_names(model), "inference_mode": True,
            "init_lora_weights": True, "use_rslora": False, "use_dora": False, "layers_to_transform": None,
            "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {}}


def save_lora(model, directory, base_model_name_or_path=None):
    save_adapter_files(directory, adapter_config(model, base_model_name_or_path), adapter_tensors(model))


def load_lora(model, directory, name="default"):
    """Add the adapter a PEFT directory holds as `name` (made active). A tensor this model has no place
    or shape for (an adapter for another base) is an error naming it."""
    config, tensors = read_adapter_files(directory)
    path = f"{directory}/adapter_model.safetensors"
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{directory}/adapter_config.json: peft_type {config.get('peft_type')!r}, not LORA")
    r, layers, own = config["r"], linear_layers(model), dict(model.named_parameters())
    for n, a in tensors.items():
        stem, _, kind = n.rpartition(".lora_")  # (bert.encoder.layer.0.attention.self.query, A.weight)
        if kind in ("A.weight", "B.weight"):
            layer = layers.get(stem)
            n_in, n_out = in_out(layer) if layer is not None else (None, None)
            check_tensor(path, n, a, None if layer is None else (r, n_in) if kind == "A.weight" else (n_out, r))
        else:
            check_tensor(path, n, a, own[n].shape if n in own else None)
    add_lora(model, r, config["lora_alpha"], config.get("lora_dropout", 0.0), config["target_modules"], name)
    missing = sorted(set(adapter_tensors(model)) - set(tensors))
    if missing:
        raise ValueError(f"{path}: lacks tensors this adapter's targets need: {', '.join(missing)}")
    dtype = next(iter(own.values())).data.dtype
    for dotted, layer in linear_layers(model).items():
        if isinstance(layer, LoRALinear):
            layer.lora_A.data = xp.asarray(tensors[f"{dotted}.lora_A.weight"], dtype=dtype).copy()
            layer.lora_B.data = xp.asarray(tensors[f"{dotted}.lora_B.weight"], dtype=dtype).copy()
    for n in head_state(model):
        own[n].data = xp.asarray(tensors[n], dtype=dtype).copy()
    model.lora_adapters[name]["head"] = head_state(model)
    return model


def in_out(layer):
    """(in, out) features of a Linear (W stored (out, in)), Conv1D (W stored (in, out)) or LoRALinear."""
    if isinstance(layer, LoRALinear):
        return layer.shape_in_out()
    return layer.weight.shape if isinstance(layer, Conv1D) else layer.weight.shape[::-1]


def merge_lora(model):
    """Fold the active adapter into every wrapped layer's weight and unwrap it; the other adapters are dropped."""
    for dotted, layer in linear_layers(model).items():
        if isinstance(layer, LoRALinear):
            set_module(model, dotted, layer.merged())
    del model.lora_adapters, model.active_adapter
    return model
