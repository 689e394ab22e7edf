"""BitFit: the backbone's biases and the head train, every other weight is frozen and gets no gradient."""

import pytest

from minillm.backend import xp
from minillm.peft.bitfit import add_bitfit
from minillm.training.optim import AdamW


@pytest.mark.parametrize("kind", ["bert", "gpt"])
def test_bitfit_trains_biases_and_head_only(tiny, inputs, kind):
    model = add_bitfit(tiny(kind))
    head = "classifier" if kind == "bert" else "score"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.endswith(".bias") or n.startswith(head)}
    ids, mask = inputs(0)
    model.backward(xp.ones_like(model(ids, mask)))
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())
    assert AdamW(model).flat_m.size == model.num_parameters(trainable_only=True)
