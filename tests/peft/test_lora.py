"""LoRA on BERT and GPT-2 task models: freezing, gradients, merge, PEFT's files, several adapters, errors."""

import json
import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.peft.lora import add_lora, load_lora, merge_lora, save_lora
from minillm.peft.model import set_adapter
from minillm.training.optim import AdamW

seeds = st.integers(0, 2**31 - 1)


def randomise_b(model, seed):
    """B starts at 0 (the model starts as the base); random B makes every check see the update."""
    rng = xp.random.default_rng(seed + 1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data = rng.standard_normal(p.shape) * 0.5


@given(seeds, st.sampled_from(["bert", "gpt"]))
def test_only_adapters_and_head_train_and_their_gradients_are_exact(tiny, inputs, seed, kind):
    targets = ("query", "value") if kind == "bert" else ("c_attn",)
    model = add_lora(tiny(kind, seed), r=2, alpha=4, dropout=0.0, target_modules=targets)
    randomise_b(model, seed)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    head = "classifier" if kind == "bert" else "score"
    assert all(".lora_" in n or n.startswith(head) for n in trainable) and len(trainable) > 4
    ids, mask = inputs(seed)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    errors = gradcheck(lambda: model(ids, mask), model.backward, [], params)
    assert_gradients_close(errors, [n for n, _ in params])
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    opt = AdamW(model)
    assert opt.flat_m.size == model.num_parameters(trainable_only=True) < model.num_parameters()


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_merged_logits_equal_unmerged(tiny, inputs, kind):
    model = add_lora(tiny(kind), r=2, alpha=8, target_modules=["all-linear"]).eval()
    randomise_b(model, 0)
    ids, mask = inputs(0)
    before = model(ids, mask)
    merged = merge_lora(model)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert float(abs(merged(ids, mask) - before).max()) < 1e-10


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_save_load_round_trip_in_peft_layout(tiny, inputs, kind, tmp_path):
    targets = ["query", "value"] if kind == "bert" else ["c_attn"]
    model = add_lora(tiny(kind), r=2, alpha=4, target_modules=targets).eval()
    randomise_b(model, 0)
    ids, mask = inputs(0)
    save_lora(model, tmp_path / "adapter", "base")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "SEQ_CLS" and config["r"] == 2
    assert config["fan_in_fan_out"] == (kind == "gpt")
    names = set(load_safetensors(tmp_path / "adapter" / "adapter_model.safetensors"))
    first = ("base_model.model.bert.encoder.layer.0.attention.self.query" if kind == "bert"
             else "base_model.model.transformer.h.0.attn.c_attn")
    assert {first + ".lora_A.weight", first + ".lora_B.weight"} <= names
    assert ("base_model.model.classifier.weight" if kind == "bert" else "base_model.model.score.weight") in names
    fresh = load_lora(tiny(kind), tmp_path / "adapter").eval()  # the same base, a fresh head
    assert float(abs(fresh(ids, mask) - model(ids, mask)).max()) < 1e-12


def test_several_adapters_over_one_base(tiny, inputs, tmp_path):
    ids, mask = inputs(0)
    logits = {}
    for name, seed in (("a", 1), ("b", 2)):
        model = add_lora(tiny("bert"), r=2, alpha=4, seed=seed).eval()
        randomise_b(model, seed)
        model.classifier.weight.data = model.classifier.weight.data * seed
        logits[name] = model(ids, mask)
        save_lora(model, tmp_path / name)
    base = tiny("bert").eval()
    load_lora(base, tmp_path / "a", "a")
    load_lora(base, tmp_path / "b", "b")
    for name in ("a", "b", "a"):
        set_adapter(base, name)
        assert float(abs(base(ids, mask) - logits[name]).max()) < 1e-12
    with pytest.raises(ValueError, match="no adapter 'c'"):
        set_adapter(base, "c")


def test_an_adapter_for_another_base_is_an_error_naming_the_tensor(tiny, tmp_path):
    save_lora(add_lora(tiny("bert", hidden=6)), tmp_path / "wide")
    with pytest.raises(ValueError, match=r"query.lora_A.weight has shape \(8, 6\); this model's is \(8, 4\)"):
        load_lora(tiny("bert"), tmp_path / "wide")
    save_lora(add_lora(tiny("gpt"), target_modules=["c_attn"]), tmp_path / "gpt")
    with pytest.raises(ValueError, match=r"tensor base_model.model.(score|transformer)\S* has no place in this model"):
        load_lora(tiny("bert"), tmp_path / "gpt")


def test_unknown_target_modules_list_the_valid_ones(tiny):
    with pytest.raises(ValueError, match=r"unknown LoRA target modules \['q_proj'\]; this model's linear layers "
                                         r"are dense, key, query, value \(or all-linear\)"):
        add_lora(tiny("bert"), target_modules=["q_proj"])
    with pytest.raises(ValueError, match="c_attn, c_fc, c_proj"):
        add_lora(tiny("gpt"), target_modules=["query"])
