"""The PyTorch twin of GPT (minillm.torch_reference) runs where PyTorch happens to be installed."""

import pytest

from minillm.backend import host_rng, to_host
from minillm.models.gpt import GPT, GPTConfig
from minillm.tools.torch_reference import copy_weights, main, torch_gpt

torch = pytest.importorskip("torch")


def test_copied_weights_give_the_same_logits_and_gradients():
    cfg = GPTConfig(vocab_size=11, n_positions=8, n_embd=12, n_layer=2, n_head=3)
    gpt = GPT(cfg, seed=3)
    model = torch_gpt(cfg.vocab_size, cfg.n_positions, cfg.n_embd, cfg.n_layer, cfg.n_head)
    copy_weights(gpt, model)
    idx = host_rng(0).integers(0, 11, (2, 8))
    ours = to_host(gpt(idx))
    theirs = model(torch.from_numpy(idx))
    assert float(abs(ours - theirs.detach().numpy()).max()) < 1e-5
    gpt.backward(gpt(idx) * 0 + 1.0)  # d(sum of logits)
    theirs.sum().backward()
    ours_grads = dict(gpt.named_parameters())
    for name, p in model.named_parameters():
        g = to_host(ours_grads["transformer." + name].grad)
        linear = name.endswith(".weight") and g.ndim == 2 and not name.startswith(("wte", "wpe"))
        expected = p.grad.numpy().T if linear else p.grad.numpy()
        assert float(abs(g - expected).max()) < 1e-4 * max(1.0, float(abs(expected).max())), name

def test_a_few_steps_side_by_side(capsys):
    main(["--steps", "2", "--no-validation"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:3]]
    for step, loss, torch_loss, norm, torch_norm in rows:
        assert float(loss) == pytest.approx(float(torch_loss), abs=2e-5)
        assert float(norm) == pytest.approx(float(torch_norm), rel=1e-4)
