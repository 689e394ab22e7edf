"""Bottleneck adapters (Houlsby et al., 2019) in a BERT or GPT-2 task model, and their adapter directory.

    add_bottleneck(model, size)        freeze the backbone, put an adapter after each attention output
                                       projection and each feed-forward output (nn/adapter.py)
    save_bottleneck / load_bottleneck  adapter_config.json + adapter_model.safetensors

Where Houlsby et al. place them: after the projection that ends each
sublayer, before its residual sum (and, in BERT, its LayerNorm), so an
adapter sees what the sublayer adds to the stream:

    BERT   attention.output.dense, output.dense         LN(h + adapter(dense(x)))
    GPT-2  attn.c_proj, mlp.c_proj                      h + adapter(c_proj(x))

Hugging Face PEFT has no bottleneck adapters (the `adapters` library has),
so the directory uses PEFT's layout with a peft_type of its own,
BOTTLENECK_ADAPTER, which PEFT does not read; tensors are named as in the
task model (`...output.dense.adapter_down.weight`) under base_model.model.
"""

from minillm.backend import xp
from minillm.nn.adapter import BottleneckAdapter
from minillm.peft.model import (active_settings, begin_adapter, check_peft_type, end_adapter, fill_adapter, head_names,
                                head_state, read_adapter_files, save_adapter_files, set_module, target_layers,
                                task_type, wrapped)

TARGETS = {"bert": ["output.dense"], "transformer": ["c_proj"]}  # both sublayers' output projections
PEFT_TYPE = "BOTTLENECK_ADAPTER"


def add_bottleneck(model, size=64, name="default", seed=0):
    """Freeze the backbone and add bottleneck adapter `name` (made active) of `size` hidden units."""
    backbone = "bert" if hasattr(model, "bert") else "transformer"
    layers = target_layers(model, TARGETS[backbone], "adapter target modules")
    begin_adapter(model, name, "adapter")
    rng = xp.random.default_rng(seed)
    for dotted, layer in layers.items():
        if not isinstance(layer, BottleneckAdapter):
            layer = BottleneckAdapter(layer)
            set_module(model, dotted, layer)
        layer.add_adapter(name, size, rng)
    end_adapter(model, name, "adapter", size=size, target_modules=TARGETS[backbone])
    return model


def adapter_tensors(model):
    """The active adapter's tensors, named as in the task model: down and up projections, and the head."""
    out = {n: p.data for dotted, layer in wrapped(model, BottleneckAdapter).items()
           for part in ("adapter_down", "adapter_up")
           for n, p in getattr(layer, part).named_parameters(f"{dotted}.{part}.")}
    return {**out, **head_state(model)}


def adapter_config(model, base_model_name_or_path=None):
    a = active_settings(model)
    return {"peft_type": PEFT_TYPE, "task_type": task_type(model), "base_model_name_or_path": base_model_name_or_path,
            "adapter_size": a["size"], "non_linearity": "gelu_new", "target_modules": a["target_modules"],
            "modules_to_save": head_names(model), "inference_mode": True}


def save_bottleneck(model, directory, base_model_name_or_path=None):
    save_adapter_files(directory, model, adapter_config(model, base_model_name_or_path), adapter_tensors(model))


def add_bottleneck_from_config(model, config, name="default"):
    return add_bottleneck(model, config["adapter_size"], name)


def load_bottleneck(model, directory, name="default"):
    """Add the adapter a directory holds as `name` (made active); a tensor of another base is an error naming it."""
    config, tensors = read_adapter_files(directory)
    check_peft_type(directory, config, PEFT_TYPE)
    add_bottleneck_from_config(model, config, name)
    params = {f"{dotted}.{part}.{kind}": getattr(getattr(layer, part), kind)
              for dotted, layer in wrapped(model, BottleneckAdapter).items()
              for part in ("adapter_down", "adapter_up") for kind in ("weight", "bias")}
    return fill_adapter(model, name, f"{directory}/adapter_model.safetensors", tensors, params)
