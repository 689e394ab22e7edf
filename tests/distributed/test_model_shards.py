"""A GPT and a BERT split across 2 ranks compute the one-process model: outputs and every parameter's gradient
to 1e-10 in float64, and the gathered checkpoint is the original. On ranks in threads here; under mpirun in
test_two_mpi_ranks_split_a_model_as_threads_do (one script, both models)."""

import pytest

from minillm.backend import xp
from minillm.distributed.model_shards import join, part, split_model
from minillm.models.auto import load_model
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.gpt import GPT, GPTConfig

from .conftest import ThreadGroup
from .test_mpi import losses, run, train, weights

V = 13


def tiny_gpt():
    return GPT(GPTConfig(vocab_size=V, n_positions=8, n_embd=8, n_layer=2, n_head=2), seed=3, dtype="float64")


def tiny_bert():
    cfg = BertConfig(vocab_size=V, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                     max_position_embeddings=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForPreTraining(cfg, seed=3, dtype="float64")


def run_gpt(model):
    rng = xp.random.default_rng(0)
    logits = model(rng.integers(0, V, (2, 8)))
    model.backward(rng.standard_normal(logits.shape))
    return [logits]


def run_bert(model):
    rng = xp.random.default_rng(0)
    mask = xp.ones((2, 8), dtype=xp.int64)
    mask[1, 5:] = 0  # padding
    scores, nsp = model(rng.integers(0, V, (2, 8)), rng.integers(0, 2, (2, 8)), mask)
    model.backward(rng.standard_normal(scores.shape), rng.standard_normal(nsp.shape))
    return [scores, nsp]


CASES = {"gpt": (tiny_gpt, run_gpt), "bert": (tiny_bert, run_bert)}


def largest_differences(comm):
    """For each model, on comm's rank: (outputs, gradients, weights) of the shards against the whole model's,
    the largest absolute difference of each (gradients and weights gathered from every rank)."""
    out = {}
    for name, (make, run_model) in CASES.items():
        whole = make()
        expected = run_model(whole)
        shard = make()
        ranks = split_model(shard, comm)
        assert shard.num_parameters() < whole.num_parameters()  # really cut
        outputs = run_model(shard)
        grads = ranks.whole_state({n: p.grad for n, p in shard.named_parameters()})
        gathered = ranks.whole_state(shard.state_dict())
        whole_params = dict(whole.named_parameters())
        assert set(grads) == set(whole_params)
        out[name] = (max(float(abs(a - b).max()) for a, b in zip(outputs, expected)),
                     max(float(abs(grads[n] - p.grad).max()) for n, p in whole_params.items()),
                     max(float(abs(gathered[n] - p.data).max()) for n, p in whole_params.items()))
    return out


def test_a_split_gpt_and_bert_compute_the_whole_model_on_two_ranks_in_threads():
    for differences in ThreadGroup(2).run(largest_differences):
        for name, (outputs, grads, gathered) in differences.items():
            assert outputs < 1e-10 and grads < 1e-10, name
            assert gathered == 0.0, name


def test_a_gathered_split_model_saves_as_the_ordinary_model(tmp_path):
    whole = tiny_gpt()

    def save(comm):
        shard = tiny_gpt()
        ranks = split_model(shard, comm)
        state = ranks.whole_state(shard.state_dict())
        if ranks.is_writer:
            shard.save_pretrained(str(tmp_path), state=state)

    ThreadGroup(2).run(save)
    loaded = load_model(str(tmp_path))
    assert type(loaded) is GPT
    loaded_state = loaded.state_dict()  # (load_model reads float32)
    assert set(loaded_state) == set(whole.state_dict())
    assert all((loaded_state[n] == a.astype("float32")).all() for n, a in whole.state_dict().items())


def test_parts_join_back_and_a_split_that_does_not_divide_is_an_error():
    a = xp.arange(24.0).reshape(2, 12)
    parts = [part(a, 1, 3, r, 2) for r in range(2)]
    assert parts[0].tolist() == [[0, 1, 4, 5, 8, 9], [12, 13, 16, 17, 20, 21]]  # q, k, v: 2 of each 4
    assert (join(parts, 1, 3) == a).all()
    with pytest.raises(ValueError, match="heads do not split across 3 ranks"):
        ThreadGroup(3).run(lambda comm: split_model(GPT(GPTConfig(vocab_size=V, n_positions=8, n_embd=12, n_layer=1,
                                                                  n_head=2)), comm))


MPI_SCRIPT = """
from minillm.distributed.mpi import world
from tests.distributed.test_model_shards import largest_differences
print("rank", world().rank, largest_differences(world()), flush=True)
"""


def test_two_mpi_ranks_split_a_model_as_threads_do():
    pytest.importorskip("mpi4py", reason="MPI is an optional extra: pip install -r requirements-mpi.txt")
    done = run(["-c", MPI_SCRIPT], ranks=2, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("rank")]
    assert len(lines) == 2
    for line in lines:
        differences = eval(line.split(" ", 2)[2], {})  # a dict of floats that this test printed
        for outputs, grads, gathered in differences.values():
            assert outputs < 1e-10 and grads < 1e-10 and gathered == 0.0


def test_train_py_resumes_a_one_process_run_split_across_two_ranks(tmp_path):
    """10 steps in one process, then 10 more with the model split across 2 MPI ranks: the losses and the
    saved (gathered) weights of 20 steps in one process. Resuming cuts the whole checkpoint's weights and
    AdamW's moments into shards; saving joins them. Without dropout: attention's masks are drawn per head."""
    pytest.importorskip("mpi4py", reason="MPI is an optional extra: pip install -r requirements-mpi.txt")
    no_dropout = ["--dropout", "0"]
    train(tmp_path / "one", 1, "--max-iters", "20", *no_dropout)
    train(tmp_path / "split", 1, "--max-iters", "10", *no_dropout)
    done = train(tmp_path / "split", 2, "--max-iters", "20", "--resume", "--tensor-parallel", "2", *no_dropout)
    assert "tensor parallel over 2 ranks" in done.stdout and done.stdout.count("val_loss") == 2  # iters 15, 20
    one, split = losses(tmp_path / "one"), losses(tmp_path / "split")
    assert len(split) == 20 and max(abs(a - b) for a, b in zip(one, split)) < 1e-5
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "split")
    assert set(w1) == set(w2) and max(float(abs(w1[name] - w2[name]).max()) for name in w1) < 1e-5
