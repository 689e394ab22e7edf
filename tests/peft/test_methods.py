"""Every method on every task model (BERT and GPT-2; classification, tagging, QA): only its parameters
train, the backward is exact, and its adapter directory round-trips through load_adapter."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_float, xp
from minillm.nn.gradcheck import assert_gradients_close, gradcheck
from minillm.peft.adapter import add_bottleneck
from minillm.peft.bitfit import add_bitfit
from minillm.peft.lora import add_lora
from minillm.peft.methods import METHODS, load_adapter
from minillm.peft.prefix import add_prefix_tuning
from minillm.peft.prompt import add_prompt_tuning
from minillm.training.optim import AdamW

ADD = {"lora": lambda m: add_lora(m, 2, 4, 0.0, ["all-linear"]), "adapter": lambda m: add_bottleneck(m, 3),
       "prompt": lambda m: add_prompt_tuning(m, 2), "prefix": lambda m: add_prefix_tuning(m, 2), "bitfit": add_bitfit}
OWN = {"lora": ".lora_", "adapter": ".adapter_", "prompt": "prompt_embeddings", "prefix": "prompt_embeddings",
       "bitfit": ".bias"}  # what the method's own trained parameters are named
HEADS = ("classifier.", "score.", "qa_outputs.")
TASK_MODELS = [("bert", "seq"), ("gpt", "seq"), ("bert", "token"), ("gpt", "token"), ("bert", "qa")]


def randomise_adapters(model, seed):
    """LoRA's B and the adapters start (near) zero; random values make every check see them."""
    rng = xp.random.default_rng(seed + 1)
    for name, p in model.named_parameters():
        if ".lora_B" in name or ".adapter_" in name:
            p.data = rng.standard_normal(p.shape) * 0.5


@pytest.mark.parametrize("method", ADD)
@pytest.mark.parametrize("kind_task", TASK_MODELS)
def test_each_method_trains_only_its_parameters_and_the_head(tiny, inputs, outputs, backward, method, kind_task):
    kind, task = kind_task
    ids, mask = inputs(0)
    shape = outputs(tiny(kind, task=task), ids, mask).shape
    model = ADD[method](tiny(kind, task=task))
    out = outputs(model, ids, mask)
    assert out.shape == shape  # virtual positions never reach the head's outputs
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if OWN[method] in n or n.startswith(HEADS)}
    assert any(OWN[method] in n for n in trainable)
    backward(model, xp.ones_like(out))
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())  # backbone: no gradient
    assert AdamW(model).flat_m.size == model.num_parameters(trainable_only=True) < model.num_parameters()


@given(st.integers(0, 2**31 - 1), st.sampled_from(sorted(TASK_MODELS)), st.sampled_from(sorted(ADD)))
def test_each_method_backward_is_exact(tiny, inputs, outputs, backward, seed, kind_task, method):
    kind, task = kind_task
    model = ADD[method](tiny(kind, seed, task=task))
    randomise_adapters(model, seed)
    ids, mask = inputs(seed)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    errors = gradcheck(lambda: outputs(model, ids, mask), lambda d: backward(model, d), [], params)
    assert_gradients_close(errors, [n for n, _ in params])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind_task", [("bert", "token"), ("gpt", "seq"), ("bert", "qa")])
def test_save_and_load_adapter_round_trip(tiny, inputs, outputs, method, kind_task, tmp_path):
    kind, task = kind_task
    model = ADD[method](tiny(kind, task=task)).eval()
    randomise_adapters(model, 0)
    for name, p in model.named_parameters():
        if "prompt_embeddings" in name or name.startswith(HEADS):
            p.data = p.data + 0.1  # trained: not what a fresh adapter or head starts as
    ids, mask = inputs(0)
    METHODS[method].save(model, tmp_path / "a", "base")
    fresh = load_adapter(tiny(kind, task=task), tmp_path / "a").eval()  # the same base, fresh otherwise
    assert to_float(abs(outputs(fresh, ids, mask) - outputs(model, ids, mask)).max()) < 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_an_adapter_for_another_base_is_an_error_naming_the_tensor(tiny, method, tmp_path):
    METHODS[method].save(ADD[method](tiny("bert", hidden=6)), tmp_path / "wide")
    with pytest.raises(ValueError, match=r"tensor \S+ has shape \(\d+, \d+\); this model's is"):
        load_adapter(tiny("bert"), tmp_path / "wide")
