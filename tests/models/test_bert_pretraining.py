"""BERT's pretraining: BertForPreTraining's checkpoints, and the local start of its attention."""

import json
import math

import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors, save_safetensors, write_json
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining, start_local
from minillm.tasks.masked_lm import mlm_nsp_loss
from minillm.training.optim import AdamW


def tiny(seed):
    cfg = BertConfig(vocab_size=7, hidden_size=4, num_hidden_layers=2, num_attention_heads=2, intermediate_size=6,
                     max_position_embeddings=6, type_vocab_size=3, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertForPreTraining(cfg, seed=seed, dtype="float32")


def test_save_and_load_pretrained(tmp_path):
    model = tiny(5)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    assert config["hidden_act"] == "gelu" and config["layer_norm_eps"] == 1e-12 and config["type_vocab_size"] == 3
    assert set(load_safetensors(tmp_path / "ckpt" / "model.safetensors")) == set(model.state_dict())
    again = BertForPreTraining.from_pretrained(tmp_path / "ckpt")
    assert again.fresh_parameters == []
    ids, types = xp.array([[1, 2, 3]]), xp.array([[0, 1, 2]])
    for a, b in zip(again.eval()(ids, types), model.eval()(ids, types)):
        assert float(abs(a - b).max()) == 0.0


def write_checkpoint(directory, state, cfg):
    directory.mkdir(exist_ok=True)
    save_safetensors(directory / "model.safetensors", state)
    write_json(directory / "config.json", {**cfg.to_dict(), "architectures": ["BertModel"], "transformers_version": "x"})


def test_encoder_only_checkpoint_loads_and_reports_fresh_heads(tmp_path):
    """A bare BertModel checkpoint (no `bert.` prefix, a position_ids buffer) as sentence-transformers ships."""
    model = tiny(2).eval()
    state = {k.removeprefix("bert."): v for k, v in model.state_dict().items() if k.startswith("bert.")}
    state["embeddings.position_ids"] = xp.arange(6)[None]
    write_checkpoint(tmp_path / "enc", state, model.config)
    with pytest.warns(UserWarning, match="initialised fresh.*cls.seq_relationship.weight"):
        loaded = BertForPreTraining.from_pretrained(tmp_path / "enc").eval()
    assert loaded.fresh_parameters == sorted(k for k in model.state_dict() if k.startswith("cls."))
    ids, mask = xp.array([[1, 2, 3, 4]]), xp.array([[1, 1, 1, 0]])
    for a, b in zip(loaded.bert(ids, attention_mask=mask), model.bert(ids, attention_mask=mask)):
        assert float(abs(a - b).max()) == 0.0


def test_stored_decoder_must_equal_the_tied_embeddings_and_bad_tensors_are_listed(tmp_path):
    model = tiny(4)
    state = dict(model.state_dict())
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    write_checkpoint(tmp_path / "tied", state, model.config)
    assert BertForPreTraining.from_pretrained(tmp_path / "tied").fresh_parameters == []

    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1
    write_checkpoint(tmp_path / "tied", state, model.config)
    with pytest.raises(ValueError, match="decoder.weight differs"):
        BertForPreTraining.from_pretrained(tmp_path / "tied")

    state = dict(model.state_dict(), **{"cls.extra.weight": xp.ones(2, dtype="float32")})
    state["bert.pooler.dense.bias"] = xp.ones(5, dtype="float32")
    write_checkpoint(tmp_path / "bad", state, model.config)
    with pytest.raises(ValueError, match=r"model.safetensors.*unexpected: cls.extra.weight.*"
                                         r"shape of bert.pooler.dense.bias: checkpoint \(5,\), model \(4,\)"):
        BertForPreTraining.from_pretrained(tmp_path / "bad")


def offset_weights(attention, offsets):
    """Mean attention weight a query puts on the key `d` places away, for each d: (H, len(offsets))."""
    alpha = attention.cache[4]  # (B, H, T, T), as the last forward left it
    T = alpha.shape[-1]
    rows = []
    for d in offsets:
        i = xp.arange(max(0, -d), min(T, T - d))
        rows.append(alpha[:, :, i, i + d].mean(axis=(0, 2)))
    return xp.stack(rows, axis=1)


@given(seed=st.integers(0, 2**16), heads=st.sampled_from([1, 2, 4]), head_width=st.sampled_from([32, 64]))
def test_local_start_heads_read_a_neighbour_from_the_first_step(seed, heads, head_width):
    """Even heads put most weight one token left, odd heads one right, in every layer, whatever the words."""
    width = heads * head_width
    cfg = BertConfig(vocab_size=500, hidden_size=width, num_hidden_layers=2, num_attention_heads=heads,
                     intermediate_size=2 * width, max_position_embeddings=48, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = BertForPreTraining(cfg, seed=seed, dtype="float32")
    start_local(model.bert)
    model.eval()
    model(xp.random.default_rng(seed).integers(1, 500, (4, 48)))
    offsets = [-3, -2, -1, 0, 1, 2, 3]
    for layer in model.bert.encoder.layer:
        weights = offset_weights(layer.attention.self, offsets)  # (H, 7)
        for h in range(heads):
            assert offsets[int(weights[h].argmax())] == (-1 if h % 2 == 0 else 1)
            assert weights[h, 3 + (-1 if h % 2 == 0 else 1)] > 0.3  # uniform would be 1/48
    assert not model.bert.embeddings.position_embeddings.weight.data[0].any()  # [CLS]'s row: no sinusoid


def test_local_start_learns_a_neighbour_task_that_the_random_start_does_not_yet():
    """Masked tokens of sequences that count up by one: only the neighbours tell them."""
    def masked_loss_after_training(local, steps=150):
        cfg = BertConfig(vocab_size=40, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=128, max_position_embeddings=24, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
        model = BertForPreTraining(cfg, seed=0, dtype="float32")
        if local:
            start_local(model.bert)
        optimizer = AdamW(model, lr=3e-3)
        rng = xp.random.default_rng(1)
        for _ in range(steps):
            ids = 5 + (rng.integers(0, 35, (16, 1)) + xp.arange(24)[None, :]) % 35  # 5.. : past the specials
            chosen = rng.random(ids.shape) < 0.15
            batch = {"input_ids": xp.where(chosen, 4, ids), "labels": xp.where(chosen, ids, -100)}
            model.zero_grad()
            loss, _ = mlm_nsp_loss(model, batch)
            optimizer.step()
        return loss

    local, random_start = masked_loss_after_training(True), masked_loss_after_training(False)
    assert local < 0.5 < math.log(35) - 0.5 < random_start  # the random start still guesses about uniformly
