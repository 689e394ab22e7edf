"""Every parameter-efficient method by name: how it is added from settings, saved, and loaded.

    METHODS["lora" | "adapter" | "prompt" | "prefix"]: a Method
    load_adapter(model, directory, name)   whatever method an adapter directory holds (its peft_type)
    add_from_config(model, config)         the structure a saved adapter_config.json describes, to load a
                                           whole fine-tuned model into (cli/predict.py)

BitFit adds no parameters (peft/bitfit.py): its result is a plain model.
"""

import collections
import os

from minillm.checkpoint import read_json
from minillm.peft import adapter, lora, prefix, prompt

Method = collections.namedtuple("Method", "peft_type save add_from_config load")

METHODS = {
    "lora": Method("LORA", lora.save_lora, lora.add_lora_from_config, lora.load_lora),
    "adapter": Method(adapter.PEFT_TYPE, adapter.save_bottleneck, adapter.add_bottleneck_from_config,
                      adapter.load_bottleneck),
    "prompt": Method("PROMPT_TUNING", prompt.save_prompt, prompt.add_prompt_from_config, prompt.load_prompt),
    "prefix": Method("PREFIX_TUNING", prefix.save_prefix, prefix.add_prefix_from_config, prefix.load_prefix),
}
BY_PEFT_TYPE = {m.peft_type: m for m in METHODS.values()}


def method_of(directory):
    """(the Method an adapter directory holds, its adapter_config.json)."""
    path = os.path.join(directory, "adapter_config.json")
    config = read_json(path)
    if config.get("peft_type") not in BY_PEFT_TYPE:
        raise ValueError(f"{path}: peft_type {config.get('peft_type')!r}; this reads "
                         f"{', '.join(BY_PEFT_TYPE)}")
    return BY_PEFT_TYPE[config["peft_type"]], config


def load_adapter(model, directory, name="default"):
    """Add the adapter `directory` holds, of whichever method, as `name` (made active)."""
    return method_of(directory)[0].load(model, directory, name)


def add_from_config(model, directory):
    """Add (untrained) the adapter the directory's adapter_config.json describes; returns the model."""
    method, config = method_of(directory)
    return method.add_from_config(model, {**config, "lora_dropout": 0.0})
