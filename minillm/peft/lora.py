"""LoRA over a BERT or GPT-2 task model: which layers get adapters, merging, PEFT's files.

    add_lora(model, r, alpha, dropout, targets)   freeze the backbone, wrap each target in nn/lora.LoRALinear
    save_lora(model, dir) / load_lora(model, dir, name)   PEFT's adapter_config.json + adapter_model.safetensors
    merge_lora(model)                             W += (alpha / r) (B A): a plain model again

Targets are matched as PEFT matches `target_modules` (peft/model.py's
target_layers), or every linear layer of the backbone for "all-linear".
Several adapters over one base, each with its own head (PEFT's
modules_to_save): peft/model.py's set_adapter.
"""

from minillm.backend import xp
from minillm.nn.lora import LoRALinear
from minillm.peft.model import (TUNER_PREFIX, active_settings, backbone_name, begin_adapter, check_peft_type,
                                check_tensor, end_adapter, fill_adapter, head_names, head_state, linear_layers,
                                read_adapter_files, save_adapter_files, set_module, target_layers, task_type, wrapped)

ALL_LINEAR = "all-linear"


def lora_targets(model, target_modules):
    if list(target_modules) == [ALL_LINEAR]:
        return linear_layers(model)
    return target_layers(model, target_modules, "LoRA target modules", also=[ALL_LINEAR])


def add_lora(model, r=8, alpha=16, dropout=0.1, target_modules=("query", "value"), name="default", seed=0):
    """Freeze the backbone and add adapter `name` (made active) to the target layers; returns the model.

    A second adapter must target the layers the first did; it starts with the head as it is now.
    """
    layers = lora_targets(model, target_modules)
    adapters = begin_adapter(model, name, "lora")
    if adapters and set(layers) != set(next(iter(adapters.values()))["layers"]):
        raise ValueError("LoRA adapters over one base must target the same layers")
    rng = xp.random.default_rng(seed)
    for dotted, layer in layers.items():
        if not isinstance(layer, LoRALinear):
            layer = LoRALinear(layer, model.random_source())
            set_module(model, dotted, layer)
        layer.add_adapter(name, r, alpha, dropout, rng)
    end_adapter(model, name, "lora", layers=sorted(layers), r=r, alpha=alpha, dropout=dropout,
                target_modules=list(target_modules))
    return model


def adapter_tensors(model):
    """The active adapter's tensors under PEFT's names (without base_model.model.): A, B and the head."""
    out = {}
    for dotted, layer in wrapped(model, LoRALinear).items():
        out[f"{dotted}.lora_A.weight"], out[f"{dotted}.lora_B.weight"] = layer.lora_A.data, layer.lora_B.data
    return {**out, **head_state(model)}


def adapter_config(model, base_model_name_or_path=None):
    """adapter_config.json of the active adapter, with the keys PEFT's LoraConfig reads."""
    a = active_settings(model)
    return {"peft_type": "LORA", "task_type": task_type(model), "base_model_name_or_path": base_model_name_or_path,
            "r": a["r"], "lora_alpha": a["alpha"], "lora_dropout": a["dropout"],
            "target_modules": a["target_modules"], "fan_in_fan_out": backbone_name(model) == "transformer",
            "bias": "none", "modules_to_save": head_names(model), "inference_mode": True,
            "init_lora_weights": True, "use_rslora": False, "use_dora": False, "layers_to_transform": None,
            "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {}}


def save_lora(model, directory, base_model_name_or_path=None):
    save_adapter_files(directory, model, adapter_config(model, base_model_name_or_path), adapter_tensors(model))


def add_lora_from_config(model, config, name="default"):
    """The adapter an adapter_config.json describes, freshly initialised (its weights are loaded next)."""
    return add_lora(model, config["r"], config["lora_alpha"], config.get("lora_dropout", 0.0),
                    config["target_modules"], name)


def load_lora(model, directory, name="default"):
    """Add the adapter a PEFT directory holds as `name` (made active). A tensor this model has no place
    or shape for (an adapter for another base) is an error naming it."""
    config, tensors = read_adapter_files(directory)
    check_peft_type(directory, config, "LORA")
    path = f"{directory}/adapter_model.safetensors"
    layers = linear_layers(model)
    for n, a in tensors.items():  # before wrapping anything: does each layer the file names exist here?
        stem, lora, _ = n.rpartition(".lora_")
        if lora and stem not in layers:
            check_tensor(path, TUNER_PREFIX + n, a, None)
    add_lora_from_config(model, config, name)
    params = {f"{dotted}.lora_{ab}.weight": getattr(layer, f"lora_{ab}")
              for dotted, layer in wrapped(model, LoRALinear).items() for ab in "AB"}
    return fill_adapter(model, name, path, tensors, params)


def merge_lora(model):
    """Fold the active adapter into every wrapped layer's weight and unwrap it; the other adapters are dropped."""
    for dotted, layer in wrapped(model, LoRALinear).items():
        set_module(model, dotted, layer.merged())
    del model.peft_adapters, model.active_adapter
    return model
