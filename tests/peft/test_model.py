"""What the methods share: several named adapters over one base, switched without reloading; targets."""

import pytest

from minillm.backend import to_float
from minillm.peft.model import set_adapter, target_layers, virtual_tokens
from minillm.peft.prompt import add_prompt_tuning
from minillm.peft.prefix import add_prefix_tuning


def test_several_prompts_over_one_base_each_with_its_head(tiny, inputs):
    ids, mask = inputs(0)
    model = add_prompt_tuning(tiny("gpt"), 2, name="a", seed=1).eval()
    model.score.weight.data = model.score.weight.data * 2
    first = model(ids, mask)
    add_prompt_tuning(model, 3, name="b", seed=2)  # starts with the head as it is now
    assert model.active_adapter == "b" and virtual_tokens(model) == 3
    model.score.weight.data = model.score.weight.data + 1
    second = model(ids, mask)
    set_adapter(model, "a")
    assert to_float(abs(model(ids, mask) - first).max()) == 0 and virtual_tokens(model) == 2
    set_adapter(model, "b")
    assert to_float(abs(model(ids, mask) - second).max()) == 0
    with pytest.raises(ValueError, match="no adapter 'c'; the model has a, b"):
        set_adapter(model, "c")
    with pytest.raises(ValueError, match="adapters over one base must be of one method: the model has prompt"):
        add_prefix_tuning(model, 2, name="c")


def test_targets_match_names_and_suffixes_and_unknown_ones_list_the_valid(tiny):
    model = tiny("bert")
    assert sorted(target_layers(model, ["attention.self.value"])) == [
        f"bert.encoder.layer.{i}.attention.self.value" for i in range(2)]
    with pytest.raises(ValueError, match=r"unknown target modules \['q_proj'\]; .* dense, key, query, value$"):
        target_layers(model, ["q_proj"])
