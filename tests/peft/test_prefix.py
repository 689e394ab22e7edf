"""Prefix tuning: PEFT's layout of the prefixes, and what a prefix means (for GPT-2, a prefix made of a prompt's
keys and values is that prompt)."""

import json

import pytest

from minillm.backend import to_float, xp
from minillm.checkpoint import load_safetensors
from minillm.peft.prefix import add_prefix_tuning, save_prefix
from minillm.peft.prompt import add_prompt_tuning


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_prefixes_are_pefts_view_of_prompt_embeddings(tiny, kind):
    model = add_prefix_tuning(tiny(kind), 3)
    wrapper = model.bert if kind == "bert" else model.transformer
    p = wrapper.prompt_embeddings.data
    assert p.shape == (3, 2 * 2 * 4)  # (n, L * 2 * C)
    # PEFT: view(B, n, 2L, H, D).permute(2, 0, 3, 1, 4), then layer l takes rows 2l (key) and 2l + 1 (value)
    peft = xp.broadcast_to(p, (2, *p.shape)).reshape(2, 3, 4, 2, 2).transpose(2, 0, 3, 1, 4)
    for layer, (k, v) in enumerate(wrapper.prefixes(2)):
        assert to_float(abs(k - peft[2 * layer]).max()) == 0 and to_float(abs(v - peft[2 * layer + 1]).max()) == 0


def test_gpt_prefix_from_a_prompts_keys_and_values_is_that_prompt(tiny, inputs):
    ids, mask = inputs(0)
    prompt = add_prompt_tuning(tiny("gpt"), 3, seed=4).eval()  # rows of the word table drawn with seed 4
    prefix = add_prefix_tuning(tiny("gpt"), 3, seed=4).eval()  # the keys and values of those same tokens
    assert to_float(abs(prefix(ids, mask) - prompt(ids, mask)).max()) < 1e-12


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_saved_in_peft_prefix_tuning_layout(tiny, kind, tmp_path):
    model = add_prefix_tuning(tiny(kind), 3)
    save_prefix(model, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["num_virtual_tokens"], config["num_layers"], config["token_dim"],
            config["prefix_projection"]) == ("PREFIX_TUNING", 3, 2, 4, False)
    assert load_safetensors(tmp_path / "a" / "adapter_model.safetensors")["prompt_embeddings"].shape == (3, 16)
