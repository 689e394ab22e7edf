"""The LSTM sequence classifier: gradients, padding, checkpoints, backbone from an LSTM LM, finetune.py end to end."""

import json

import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors
from minillm.cli import finetune, pretrain
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.lstm_classifier import LSTMClassifierConfig, LSTMForSequenceClassification
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.nn.gradcheck import gradcheck

seeds = st.integers(0, 2**31 - 1)
V = 7


def tiny(seed, pooling="last", num_layers=2, dtype="float64"):
    cfg = LSTMClassifierConfig(vocab_size=V, n_embd=3, hidden_size=3, num_layers=num_layers, pooling=pooling)
    return LSTMForSequenceClassification(cfg, ["a", "b", "c"], seed=seed, dtype=dtype)


def right_padded(rng, b, t):
    """Random ids (padding positions too: they must not matter) and a mask of random lengths 1..t."""
    lengths = rng.integers(1, t + 1, b)
    return rng.integers(0, V, (b, t)), (xp.arange(t)[None, :] < lengths[:, None]).astype(xp.int64), lengths


@given(seeds, st.integers(1, 3), st.integers(1, 5), st.sampled_from(["last", "mean"]), st.integers(1, 2))
def test_gradients_of_every_parameter_with_padding(seed, b, t, pooling, num_layers):
    model = tiny(seed, pooling, num_layers)
    rng = xp.random.default_rng(seed)
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape) * 0.5
    idx, mask, _ = right_padded(rng, b, t)
    errors = gradcheck(lambda: model(idx, mask), model.backward, (), list(model.named_parameters()))
    assert len(errors) == 2 + 4 * num_layers + 1 and max(errors.values()) <= 1e-6, errors


@given(seeds, st.integers(1, 4), st.integers(1, 6), st.sampled_from(["last", "mean"]))
def test_padding_does_not_change_a_texts_logits(seed, b, t, pooling):
    model = tiny(seed, pooling)
    rng = xp.random.default_rng(seed)
    idx, mask, lengths = right_padded(rng, b, t)
    logits = model(idx, mask)
    other_pad = xp.where(mask == 1, idx, (idx + 1) % V)
    assert float(abs(model(other_pad, mask) - logits).max()) == 0.0
    for i, n in enumerate(lengths.tolist()):
        alone = model(idx[i:i + 1, :n], mask[i:i + 1, :n])
        assert float(abs(alone - logits[i:i + 1]).max()) < 1e-12


def test_last_pooling_reads_the_state_after_the_last_real_token():
    model = tiny(0, "last")
    model.eval()
    idx = xp.array([[1, 2, 3, 0, 0], [4, 5, 6, 1, 2]])
    mask = xp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    logits = model(idx, mask)
    for i, n in enumerate((3, 5)):
        _, (h_n, _) = model.rnn(model.encoder(idx[i:i + 1, :n]))  # the text alone: its final state
        assert float(abs(model.classifier(h_n[-1]) - logits[i:i + 1]).max()) < 1e-12
    outputs, _ = model.rnn(model.encoder(idx[:1, :3]))
    mean = tiny(0, "mean")
    mean.eval()
    assert float(abs(mean.classifier(outputs.mean(axis=1)) - mean(idx, mask)[:1]).max()) < 1e-12


def test_save_and_load_give_identical_logits(tmp_path):
    model = tiny(3, "mean", dtype="float32")
    model.pad_token_id = 5
    model.eval()
    idx, mask, _ = right_padded(xp.random.default_rng(0), 4, 6)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "lstm_lm" and config["architectures"] == ["LSTMForSequenceClassification"]
    loaded = LSTMForSequenceClassification.from_pretrained(tmp_path)
    loaded.eval()
    assert (loaded.config, loaded.label_names, loaded.pad_token_id) == (model.config, ["a", "b", "c"], 5)
    assert (loaded(idx, mask) == model(idx, mask)).all()


def test_bad_pooling_in_config_names_the_file(tmp_path):
    tiny(0).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "pooling": "max"}))
    with pytest.raises(ValueError, match=r"config.json: pooling is 'max', expected one of last, mean"):
        LSTMForSequenceClassification.from_pretrained(tmp_path)


@pytest.mark.parametrize("tie", [False, True])
def test_backbone_from_an_lstm_lm_checkpoint(tmp_path, tie):
    lm = LSTMLM(LSTMConfig(vocab_size=V, n_embd=4, hidden_size=4, num_layers=2, tie_weights=tie), seed=5)
    lm.save_pretrained(tmp_path)
    cfg = LSTMClassifierConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    model = LSTMForSequenceClassification(cfg, ["x", "y"], seed=9)
    fresh, unused = model.load_backbone(load_safetensors(tmp_path / "model.safetensors"))
    assert fresh == ["classifier.bias", "classifier.weight"] and unused == ["decoder.bias", "decoder.weight"]
    lm_state = lm.state_dict()
    for name, p in model.named_parameters():
        if not name.startswith("classifier."):
            assert (p.data == lm_state[name]).all(), name


@pytest.fixture(scope="module")
def lstm_lm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "lstm"
    pretrain.main(["--model", "lstm", "--tokenizer", "bpe", "--vocab-size", "300", "--n-layer", "1", "--n-embd", "8",
                   "--hidden-size", "8", "--block-size", "16", "--batch-size", "4", "--max-iters", "2",
                   "--eval-iters", "1", "--sample-tokens", "0", "--no-progress", "--out-dir", str(out)])
    return out


def test_finetune_from_an_lstm_lm_run(lstm_lm_run, tmp_path, capsys):
    out = tmp_path / "ft"
    results = finetune.main(["--task", "sentiment", "--init", str(lstm_lm_run), "--pooling", "last",
                             "--max-train-examples", "64", "--batch-size", "16", "--epochs", "1", "--no-progress",
                             "--out-dir", str(out)])
    printed = capsys.readouterr().out
    assert "tokenizer: BPETokenizer of 300 tokens from" in printed and "it covers any text" in printed
    assert ("initialised fresh: classifier.bias, classifier.weight; "
            "checkpoint weights not used: decoder.bias, decoder.weight") in printed
    assert set(results) == {"dev"} and 0.0 <= results["dev"]["accuracy"] <= 1.0
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["architectures"] == ["LSTMForSequenceClassification"] and config["pooling"] == "last"
    assert (out / "best" / "merges.txt").exists()  # the LM's BPE tokenizer travels with the classifier


def test_finetune_model_lstm_from_scratch_then_predict(tmp_path, capsys):
    out = tmp_path / "ft"
    common = ["--task", "intent", "--model", "lstm", "--no-progress", "--out-dir", str(out)]
    results = finetune.main(common + ["--vocab-size", "200", "--n-embd", "8", "--hidden-size", "8",
                                      "--max-train-examples", "64", "--batch-size", "16", "--epochs", "1"])
    printed = capsys.readouterr().out
    assert "random initialisation; architecture and tokenizer from --model lstm (wordpiece vocabulary of 200 " \
           "learned from the 64 training texts)" in printed
    assert set(results) == {"dev", "test"}
    assert json.loads((out / "best" / "config.json").read_text())["n_embd"] == 8
    finetune.main(common + ["--predict", "play some jazz music"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(line["probabilities"]) == 7 and sum(line["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_a_character_lm_that_cannot_encode_the_task_is_a_clear_error(tmp_path):
    pre = tmp_path / "char"
    pretrain.main(["--model", "lstm", "--n-layer", "1", "--n-embd", "4", "--hidden-size", "4", "--block-size", "8",
                   "--batch-size", "2", "--max-iters", "1", "--eval-iters", "1", "--sample-tokens", "0",
                   "--no-progress", "--out-dir", str(pre)])
    with pytest.raises(SystemExit, match=r"cannot encode the sentiment texts: character .* not in the vocabulary"):
        finetune.main(["--task", "sentiment", "--init", str(pre), "--no-progress", "--out-dir", str(tmp_path / "ft")])


def test_model_lstm_with_init_starts_from_the_lstm_lm(lstm_lm_run, tmp_path, capsys):
    """The README's `finetune.py --model lstm --init DIR`: the LM's weights and tokenizer, the LSTM's defaults."""
    results = finetune.main(["--task", "sentiment", "--model", "lstm", "--init", str(lstm_lm_run),
                             "--max-train-examples", "32", "--max-eval-examples", "32", "--batch-size", "16",
                             "--epochs", "1", "--no-progress", "--out-dir", str(tmp_path / "ft")])
    assert "backbone from" in capsys.readouterr().out and set(results) == {"dev"}
    GPT(GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1)).save_pretrained(tmp_path / "gpt")
    with pytest.raises(ValueError, match="model_type 'gpt2', but --task sentiment fine-tunes lstm_lm"):
        finetune.load_source(finetune.parse_args(["--model", "lstm", "--init", str(tmp_path / "gpt")]))
