"""Prompt tuning: virtual tokens, their masks and positions, which position the head reads, PEFT's files."""

import json

import pytest

from minillm.backend import to_float, to_host, xp
from minillm.checkpoint import load_safetensors
from minillm.peft.prompt import add_prompt_tuning, save_prompt


def with_prompt(model, n=2):
    model = add_prompt_tuning(model, n).eval()
    wrapper = model.bert if hasattr(model, "bert") else model.transformer
    wrapper.prompt_embeddings.data = xp.random.default_rng(5).standard_normal(wrapper.prompt_embeddings.shape)
    return model, wrapper, wrapper.prompt_embeddings.data


def prepended(p, table, ids, mask):
    x = xp.concatenate([xp.broadcast_to(p, (ids.shape[0], *p.shape)), table[ids]], axis=1)
    return x, xp.concatenate([xp.ones((ids.shape[0], p.shape[0]), dtype=mask.dtype), mask], axis=1)


def test_gpt_classifier_reads_the_last_real_token_after_the_prompt(tiny, inputs):
    model, wrapper, p = with_prompt(tiny("gpt"))
    ids, mask = inputs(0)
    x, full_mask = prepended(p, wrapper.wte.weight.data, ids, mask)
    h = wrapper.base_layer(None, attention_mask=full_mask, inputs_embeds=x)  # positions 0 .. n + T - 1
    last = p.shape[0] + mask.sum(axis=1) - 1
    expected = h[xp.arange(3), last] @ model.score.weight.data.T
    assert to_float(abs(model(ids, mask) - expected).max()) < 1e-12


def test_bert_pooler_reads_position_0_the_first_virtual_token_as_peft_does(tiny, inputs):
    model, wrapper, p = with_prompt(tiny("bert"))
    ids, mask = inputs(0)
    x, full_mask = prepended(p, wrapper.embeddings.word_embeddings.weight.data, ids, mask)
    _, pooled = wrapper.base_layer(None, None, full_mask, inputs_embeds=x)
    expected = model.classifier(pooled)
    assert to_float(abs(model(ids, mask) - expected).max()) < 1e-12


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_token_outputs_drop_the_virtual_positions_and_ignore_padding(tiny, inputs, kind):
    model, _, _ = with_prompt(tiny(kind, task="token"))
    ids, mask = inputs(0)
    out = model(ids, mask)
    assert out.shape == (3, 5, 3)
    other = ids.copy()
    other[0, 3:] = 1  # row 0's padded tokens
    assert to_float(abs(model(other, mask)[0, :3] - out[0, :3]).max()) < 1e-12


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_saved_in_peft_prompt_tuning_layout(tiny, kind, tmp_path):
    model, _, p = with_prompt(tiny(kind))
    save_prompt(model, tmp_path / "a", "base")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert {k: config[k] for k in ("peft_type", "task_type", "num_virtual_tokens", "token_dim",
                                   "num_transformer_submodules", "num_attention_heads", "num_layers")} == {
        "peft_type": "PROMPT_TUNING", "task_type": "SEQ_CLS", "num_virtual_tokens": 2, "token_dim": 4,
        "num_transformer_submodules": 1, "num_attention_heads": 2, "num_layers": 2}
    tensors = load_safetensors(tmp_path / "a" / "adapter_model.safetensors")
    head = "base_model.classifier" if kind == "bert" else "base_model.score"
    assert set(tensors) == {"prompt_embeddings", head + ".weight"} | ({head + ".bias"} if kind == "bert" else set())
    assert (tensors["prompt_embeddings"] == to_host(p)).all()  # the file holds host arrays
