"""BatchParallel: the batch split over threads gives the model's own logits and gradients."""

import argparse

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, to_device, to_float, to_host
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.heads import BertForQuestionAnswering
from minillm.models.xlnet import XLNetConfig, XLNetLMHeadModel
from minillm.nn.loss import IGNORE_INDEX
from minillm.nn.parallel import BatchParallel, add_threads_argument
from minillm.tasks.causal_lm import ar_loss, ar_loss_backward
from minillm.tasks.masked_lm import mlm_nsp_loss
from minillm.tasks.permutation_lm import permutation_lm_batch, plm_loss

V, T = 11, 6


def tiny_gpt(seed=0, dropout=0.0):
    cfg = GPTConfig(vocab_size=V, n_positions=T, n_embd=8, n_layer=2, n_head=2, resid_pdrop=dropout,
                    embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT(cfg, seed=seed, dtype="float64")


def grads_of(model):
    """Every filled gradient as host arrays, by name; the gradients are then cleared."""
    out = {n: to_host(p.grad) for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out


def assert_same_gradients(got, expected):
    assert set(got) == set(expected)
    for name, g in expected.items():
        np.testing.assert_allclose(got[name], g, rtol=1e-10, atol=1e-14, err_msg=name)


def loss_and_grads(model, x, y):
    """AR loss and every gradient of the whole batch, through model (a GPT or its BatchParallel)."""
    loss, cache = ar_loss(model(x), y)
    model.backward(ar_loss_backward(1.0, cache))
    return to_float(loss), grads_of(model)


def batch(seed, rows):
    rng = np.random.default_rng(seed)
    return to_device(rng.integers(0, V, (rows, T))), to_device(rng.integers(0, V, (rows, T)))


@given(rows=st.integers(1, 7), threads=st.integers(1, 4), seed=st.integers(0, 1000))
def test_slices_give_the_whole_batch_loss_and_gradients(rows, threads, seed):
    model = tiny_gpt(seed)
    x, y = batch(seed, rows)
    loss, grads = loss_and_grads(model, x, y)
    split_loss, split_grads = loss_and_grads(BatchParallel(model, threads), x, y)
    assert split_loss == pytest.approx(loss, rel=1e-13)
    assert_same_gradients(split_grads, grads)


def test_every_slice_counts_once_in_the_gradient():
    """Twice the same rows: each half holds one copy, so the gradient is that of one copy."""
    model = tiny_gpt()
    x, y = batch(3, 2)
    _, grads = loss_and_grads(model, x, y)
    _, doubled = loss_and_grads(BatchParallel(model, 2), np.concatenate([x, x]), np.concatenate([y, y]))
    assert_same_gradients(doubled, grads)


def test_replicas_read_weights_loaded_after_wrapping():
    model, other = tiny_gpt(0), tiny_gpt(1)
    parallel = BatchParallel(model, 3)
    model.load_state_dict(other.state_dict())  # replaces every parameter array
    x, _ = batch(0, 5)
    np.testing.assert_allclose(to_host(parallel(x)), to_host(other(x)), rtol=1e-12)


def test_modes_and_dropout_follow_the_model():
    model = tiny_gpt(dropout=0.5)
    parallel = BatchParallel(model, 2)
    x, _ = batch(0, 4)
    parallel.eval()  # the model's eval(): no dropout, in every slice
    np.testing.assert_allclose(to_host(parallel(x)), to_host(model(x)), rtol=1e-12)
    parallel.train()
    model.dropout_rng.reseed(7)
    first = to_host(parallel(x))
    model.dropout_rng.reseed(7)
    again = to_host(parallel(x))
    np.testing.assert_array_equal(first, again)  # masks drawn from the model's generator: repeatable
    model.dropout_rng.reseed(7)
    out = to_host(parallel(np.concatenate([x[:2], x[:2]])))
    assert not np.allclose(out[:2], out[2:])  # the two slices draw their own masks for the same rows


def test_tuple_outputs_and_gradients():
    """A model with two outputs (BERT's QA head: start and end logits) and two output gradients."""
    cfg = BertConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                     max_position_embeddings=T, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForQuestionAnswering(cfg, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    ids, mask = to_device(rng.integers(0, 9, (5, T))), to_device(np.ones((5, T), dtype=np.int64))
    dstart, dend = to_device(rng.standard_normal((5, T))), to_device(rng.standard_normal((5, T)))
    start, end = model(ids, mask)
    model.backward(dstart, dend)
    grads = grads_of(model)
    parallel = BatchParallel(model, 2)
    split_start, split_end = parallel(ids, mask)
    parallel.backward(dstart, dend)
    np.testing.assert_allclose(to_host(split_start), to_host(start), rtol=1e-12)
    np.testing.assert_allclose(to_host(split_end), to_host(end), rtol=1e-12)
    assert_same_gradients(grads_of(model), grads)


def assert_split_matches_whole(loss_fn, model, batch, threads):
    """loss_fn(model, batch) -> (loss, metrics): the same loss, metrics and gradients through BatchParallel."""
    loss, metrics = loss_fn(model, batch)
    grads = grads_of(model)
    split_loss, split_metrics = loss_fn(BatchParallel(model, threads), batch)
    assert split_loss == pytest.approx(loss, rel=1e-12) and split_metrics == pytest.approx(metrics, rel=1e-12)
    assert_same_gradients(grads_of(model), grads)


@given(rows=st.integers(2, 5), seed=st.integers(0, 1000))
def test_bert_masked_positions_are_split_with_their_rows(rows, seed):
    """MLM + NSP: each slice scores its own masked positions; the scores stack in row-major order."""
    cfg = BertConfig(vocab_size=V, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                     max_position_embeddings=T, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((rows, T)) < 0.3, rng.integers(0, V, (rows, T)), IGNORE_INDEX)
    batch = {"input_ids": to_device(rng.integers(1, V, (rows, T))),
             "token_type_ids": to_device(np.zeros((rows, T), dtype=np.int64)),
             "attention_mask": to_device(np.ones((rows, T), dtype=np.int64)), "labels": labels,
             "next_sentence_label": to_device(rng.integers(0, 2, rows))}
    assert_split_matches_whole(mlm_nsp_loss, BertForPreTraining(cfg, seed=seed, dtype="float64"), batch, 3)


def test_xlnet_targets_are_split_with_their_rows():
    cfg = XLNetConfig(vocab_size=V, d_model=8, n_layer=1, n_head=2, d_inner=8, dropout=0.0,
                      max_position_embeddings=T)
    rng = np.random.default_rng(0)
    batch = permutation_lm_batch(rng.integers(0, V, (5, T)), rng, predict_ratio=0.5)
    assert_split_matches_whole(plm_loss, XLNetLMHeadModel(cfg, seed=0, dtype="float64"), batch, 2)


def test_an_array_without_the_batch_on_axis_0_is_refused():
    parallel = BatchParallel(tiny_gpt(), 2)
    x, _ = batch(0, 4)
    with pytest.raises(ValueError, match=r"axis 0, size 4.*attention_mask has shape \(3, 6\)"):
        parallel(x, attention_mask=to_device(np.ones((3, T))))
    parallel(x)
    with pytest.raises(ValueError, match="gradient 0 has 3 rows; output 0 had 4"):
        parallel.backward(to_device(np.ones((3, T, V))))
    with pytest.raises(ValueError, match="threads must be at least 1"):
        BatchParallel(tiny_gpt(), 0)


def test_threads_flag(capsys, monkeypatch):
    monkeypatch.setenv("MINILLM_THREADS", "5")
    parser = argparse.ArgumentParser()
    add_threads_argument(parser)
    assert parser.parse_args([]).threads == 5 and parser.parse_args(["--threads", "3"]).threads == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--threads", "0"])
    assert "--threads: must be at least 1, got 0" in capsys.readouterr().err
