"""The strict device: implicit copies to the host fail, explicit ones are counted, a training step makes few."""

import os

import numpy
import pytest

from minillm import backend
from minillm import strict
from minillm.models.gpt import GPT, GPTConfig
from minillm.tasks.causal_lm import CausalLMTask
from minillm.training.trainer import TrainConfig, Trainer


@pytest.fixture
def on_strict(monkeypatch):
    """The strict device for one test, its reads refused as the library's are, then the suite's device."""
    monkeypatch.setattr(strict, "READERS", [])
    before = backend.device()
    backend.use("strict")
    yield backend.xp
    backend.use(before)


def test_the_tests_may_read_device_values_the_library_may_not(on_strict, monkeypatch):
    x = on_strict.arange(3.0)
    monkeypatch.setattr(strict, "READERS", [os.path.dirname(__file__)])
    numpy.testing.assert_allclose(x + numpy.ones(3), [1.0, 2.0, 3.0])
    assert float(x.sum()) == 3.0 and [float(v) for v in x] == [0.0, 1.0, 2.0] and x[1] == pytest.approx(1.0)
    library_code = eval(compile("lambda a: float(a)", "library_module.py", "eval"))  # a caller outside the tests
    with pytest.raises(strict.ImplicitTransfer, match="float()"):
        library_code(x.sum())


@pytest.mark.parametrize("implicit", [numpy.asarray, float, int, bool, iter, list],
                         ids=["np.asarray", "float", "int", "bool", "iter", "list"])
def test_an_implicit_copy_to_the_host_is_refused(on_strict, implicit):
    x = on_strict.ones(3)
    with pytest.raises(strict.ImplicitTransfer):
        implicit(x.sum() if implicit in (float, int, bool) else x)


def test_a_host_array_mixed_into_device_work_is_refused(on_strict):
    x = on_strict.ones(3)
    with pytest.raises(strict.ImplicitTransfer):
        x + numpy.ones(3)
    with pytest.raises(strict.ImplicitTransfer):
        on_strict.concatenate([x, numpy.ones(3)])
    assert backend.to_float((x + 2.0).sum()) == 9.0  # a Python scalar is no array: allowed, as in CuPy


def test_explicit_transfers_are_counted(on_strict):
    before = strict.TRANSFERS.copy()
    x = backend.to_device(numpy.arange(4.0))
    assert backend.to_host(x * 2).tolist() == [0.0, 2.0, 4.0, 6.0]
    assert x.sum().item() == 6.0 and x.tolist() == [0.0, 1.0, 2.0, 3.0] and backend.to_float(x[1]) == 1.0
    counted = strict.TRANSFERS - before
    assert counted == {"to_device": 1, "to_host": 4}


def test_results_are_device_arrays_and_type_questions_stay_on_the_host(on_strict):
    x = on_strict.arange(6.0).reshape(2, 3)
    assert isinstance(x.sum(), strict.StrictArray) and isinstance(x @ x.T, strict.StrictArray)
    assert on_strict.issubdtype(x.dtype, on_strict.floating) is True  # CuPy takes these from NumPy as they are
    assert backend.to_host(x[1, 1:]).tolist() == [4.0, 5.0]


def test_a_training_step_reads_back_the_loss_and_the_grad_norm_not_one_value_per_layer(on_strict, tmp_path):
    cfg = TrainConfig(max_iters=3, warmup_iters=0, grad_accum=2)
    model = GPT(GPTConfig(vocab_size=11, n_positions=8, n_embd=8, n_layer=3, n_head=2))
    ids = numpy.random.default_rng(0).integers(0, 11, 200)
    task = CausalLMTask(model, ids[:150], ids[150:], batch_size=2, block_size=8)
    trainer = Trainer(model, task, cfg, str(tmp_path), progress=False)
    for it in range(cfg.max_iters):
        before = strict.TRANSFERS.copy()
        loss = trainer.step(it, lr=1e-3)
        counted = strict.TRANSFERS - before
        # per micro-batch: inputs and targets in, its loss and cross-entropy's count out; per step: the grad norm
        assert counted == {"to_device": 2 * cfg.grad_accum, "to_host": 2 * cfg.grad_accum + 1}, counted
        assert isinstance(loss, float) and numpy.isfinite(loss) and numpy.isfinite(trainer.last_grad_norm)
