"""Bottleneck adapters in BERT and GPT-2: where they go, their near-identity start, their files."""

import json

import pytest

from minillm.backend import to_float
from minillm.checkpoint import load_safetensors
from minillm.nn.adapter import BottleneckAdapter
from minillm.peft.adapter import add_bottleneck, save_bottleneck

PLACES = {"bert": {"bert.encoder.layer.0.attention.output.dense", "bert.encoder.layer.0.output.dense",
                   "bert.encoder.layer.1.attention.output.dense", "bert.encoder.layer.1.output.dense"},
          "gpt": {"transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj", "transformer.h.1.attn.c_proj",
                  "transformer.h.1.mlp.c_proj"}}


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_adapters_follow_each_sublayer_output_and_start_near_the_base(tiny, inputs, kind, tmp_path):
    ids, mask = inputs(0)
    before = tiny(kind)(ids, mask)
    model = add_bottleneck(tiny(kind), 3)
    assert {n for n, m in model.named_modules() if isinstance(m, BottleneckAdapter)} == PLACES[kind]
    assert 0 < to_float(abs(model(ids, mask) - before).max()) < 0.05
    save_bottleneck(model, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["adapter_size"]) == ("BOTTLENECK_ADAPTER", 3)
    names = set(load_safetensors(tmp_path / "a" / "adapter_model.safetensors"))
    first = sorted(PLACES[kind])[0]
    assert f"base_model.model.{first}.adapter_down.weight" in names and len(names) == 4 * 4 + (2 if kind == "bert"
                                                                                               else 1)
