"""safetensors written and read from the spec; atomic checkpoint directories; every model's save and load."""

import json
import os
import re
import shutil
import struct

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, to_host, xp
from minillm.checkpoint import (load_safetensors, read_json, read_safetensors, recover_directory,
                                save_directory_atomically, save_safetensors, write_json)
from minillm.models.bert import BertConfig, BertModel
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.heads import (BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                                  GPTForSequenceClassification, GPTForTokenClassification)
from minillm.models.lstm_classifier import LSTMClassifierConfig, LSTMForSequenceClassification
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.models.xlnet import XLNetConfig, XLNetLMHeadModel
from minillm.nn.layers import RandomSource


@given(st.sampled_from(["float32", "float64", "float16", "int64", "int32", "uint8", "bool"]),
       st.lists(st.integers(0, 4), min_size=0, max_size=3))
def test_round_trip(tmp_path_factory, dtype, shape):
    path = tmp_path_factory.mktemp("st") / "m.safetensors"
    a = (np.random.default_rng(0).standard_normal(shape) * 5).astype(dtype)
    save_safetensors(path, {"a": a, "b.c": np.arange(3, dtype="float32")}, {"format": "pt"})
    tensors, meta = read_safetensors(path)
    assert meta == {"format": "pt"} and tensors["a"].dtype == a.dtype and tensors["a"].shape == a.shape
    assert (tensors["a"] == a).all() and tensors["b.c"].tolist() == [0.0, 1.0, 2.0]


def test_layout_follows_the_spec(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"x": np.array([1.0, 2.0], dtype="float32")})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header == {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    assert raw[8 + n:] == struct.pack("<2f", 1.0, 2.0)


def test_bfloat16_is_read_as_float32(tmp_path):
    head = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    bits = (np.array([1.5, -2.0], dtype="float32").view("uint32") >> 16).astype("<u2").tobytes()
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bits)
    assert read_safetensors(tmp_path / "b.safetensors")[0]["w"].tolist() == [1.5, -2.0]


SHORT = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}'  # 4 floats need 16 bytes


@pytest.mark.parametrize("content, message", [
    (b"abc", "too short"),
    (struct.pack("<Q", 100) + b"{}", "runs past the end"),
    (struct.pack("<Q", 2) + b"{]", "not valid JSON"),
    (struct.pack("<Q", len(SHORT)) + SHORT + b"\0" * 8, "do not fit"),
])
def test_malformed_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_safetensors(path)
    assert "bad.safetensors" in str(info.value)


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path):
    target = tmp_path / "ckpt"
    save_directory_atomically(target, lambda d: open(os.path.join(d, "a.txt"), "w").write("one"))

    def crash(d):
        open(os.path.join(d, "a.txt"), "w").write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_directory_atomically(target, crash)
    assert (target / "a.txt").read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    save_directory_atomically(target, lambda d: open(os.path.join(d, "a.txt"), "w").write("two"))
    assert (target / "a.txt").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["ckpt"]


def write_save(directory, text):
    os.makedirs(directory)
    (directory / "a.txt").write_text(text)


# what a crash can leave next to ckpt (saves "one", then "two"), and the save that must be found
CRASH_STATES = {
    "writing the new save": ({"ckpt": "one", ".tmp-ckpt-x1": "tw"}, "one"),
    "the new save complete": ({"ckpt": "one", "ckpt.new": "two"}, "two"),
    "between the two renames": ({"ckpt.old": "one", "ckpt.new": "two"}, "two"),
    "only the old save (renamed by hand)": ({"ckpt.old": "one"}, "one"),
    "deleting the old save": ({"ckpt": "two", "ckpt.old": "on"}, "two"),
    "an incomplete save and the old one": ({"ckpt.old": "one", ".tmp-ckpt-x1": "tw"}, "one"),
}


@pytest.mark.parametrize("state", CRASH_STATES)
def test_every_state_a_crash_leaves_recovers_the_newest_complete_save(tmp_path, state):
    left, newest = CRASH_STATES[state]
    for name, text in left.items():
        write_save(tmp_path / name, text)
    assert recover_directory(tmp_path / "ckpt") == str(tmp_path / "ckpt")
    assert sorted(os.listdir(tmp_path)) == ["ckpt"] and (tmp_path / "ckpt" / "a.txt").read_text() == newest
    for name, text in left.items():  # the next save also starts by recovering
        shutil.rmtree(tmp_path / name, ignore_errors=True)
        write_save(tmp_path / name, text)
    save_directory_atomically(tmp_path / "ckpt", lambda d: open(os.path.join(d, "a.txt"), "w").write("three"))
    assert sorted(os.listdir(tmp_path)) == ["ckpt"] and (tmp_path / "ckpt" / "a.txt").read_text() == "three"


def test_nothing_to_recover(tmp_path):
    assert recover_directory(tmp_path / "ckpt") is None
    assert recover_directory(tmp_path / "no-run" / "ckpt") is None and not (tmp_path / "no-run").exists()
    write_save(tmp_path / ".tmp-ckpt-x1", "half")
    assert recover_directory(tmp_path / "ckpt") is None and os.listdir(tmp_path) == []


# ---------------------------------------------------------------- every model through save_pretrained / from_pretrained
GPT_CFG = GPTConfig(vocab_size=11, n_positions=8, n_embd=4, n_layer=1, n_head=2)
BERT_CFG = BertConfig(vocab_size=11, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=6,
                      max_position_embeddings=8)
XLNET_CFG = XLNetConfig(vocab_size=11, d_model=4, n_layer=1, n_head=2, d_inner=6, max_position_embeddings=8)
LSTM_CFG = LSTMConfig(vocab_size=11, n_embd=4, hidden_size=4, num_layers=1, tie_weights=True)
LSTM_CLS_CFG = LSTMClassifierConfig(vocab_size=11, n_embd=4, hidden_size=6, num_layers=2, pooling="last")
LABELS = ["neg", "pos", "odd"]

# (a tiny model drawn with a seed, the architecture its config.json names: None for none)
MODELS = {
    "GPT": (lambda seed: GPT(GPT_CFG, seed=seed), "GPT2LMHeadModel"),
    "BertForPreTraining": (lambda seed: BertForPreTraining(BERT_CFG, seed=seed), "BertForPreTraining"),
    "BertModel": (lambda seed: BertModel(BERT_CFG, xp.random.default_rng(seed), RandomSource(seed), "float32"),
                  "BertModel"),
    "XLNetLMHeadModel": (lambda seed: XLNetLMHeadModel(XLNET_CFG, seed=seed), "XLNetLMHeadModel"),
    "LSTMLM": (lambda seed: LSTMLM(LSTM_CFG, seed=seed), None),
    "GPTForSequenceClassification": (lambda seed: GPTForSequenceClassification(GPT_CFG, LABELS, 3, seed=seed),
                                     "GPT2ForSequenceClassification"),
    "GPTForTokenClassification": (lambda seed: GPTForTokenClassification(GPT_CFG, LABELS, 3, seed=seed),
                                  "GPT2ForTokenClassification"),
    "BertForSequenceClassification": (lambda seed: BertForSequenceClassification(BERT_CFG, LABELS, seed=seed),
                                      "BertForSequenceClassification"),
    "BertForTokenClassification": (lambda seed: BertForTokenClassification(BERT_CFG, LABELS, seed=seed),
                                   "BertForTokenClassification"),
    "BertForQuestionAnswering": (lambda seed: BertForQuestionAnswering(BERT_CFG, seed=seed),
                                 "BertForQuestionAnswering"),
    "LSTMForSequenceClassification": (lambda seed: LSTMForSequenceClassification(LSTM_CLS_CFG, LABELS, seed=seed),
                                      "LSTMForSequenceClassification"),
}


def same_state(a, b):
    return set(a) == set(b) and all(a[n].shape == b[n].shape and to_host((a[n] == b[n]).all()) for n in a)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_round_trips_its_directory(tmp_path, name):
    make, architecture = MODELS[name]
    model = make(3)
    model.save_pretrained(tmp_path / "m", extra_files=lambda d: write_json(os.path.join(d, "extra.json"), {"a": 1}))
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary directory left behind
    assert read_json(tmp_path / "m" / "extra.json") == {"a": 1}
    config = read_json(tmp_path / "m" / "config.json")
    assert config.get("architectures") == (architecture and [architecture])
    assert config["model_type"] == {GPTConfig: "gpt2", BertConfig: "bert", XLNetConfig: "minillm-xlnet"}.get(
        type(model.config), "lstm_lm")
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config and loaded.fresh_parameters == []
    assert same_state(loaded.state_dict(), model.state_dict())
    assert getattr(loaded, "label_names", None) == getattr(model, "label_names", None)
    resumed = make(4)  # the trainer's resume: the saved tensors into a model built from the run's config
    resumed.load_pretrained_state(load_safetensors(tmp_path / "m" / "model.safetensors"))
    assert same_state(resumed.state_dict(), model.state_dict())


@pytest.mark.parametrize("name", MODELS)
def test_every_model_names_the_file_it_cannot_load(tmp_path, name):
    model = MODELS[name][0](0)
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    tensors = load_safetensors(path)
    first = sorted(tensors)[0]
    tensors[first] = np.zeros(tensors[first].shape + (2,), dtype="float32")
    save_safetensors(path, tensors)
    with pytest.raises(ValueError, match=re.escape(f"{path}: state does not fit the model; shape of {first}")):
        type(model).from_pretrained(tmp_path / "m")
    os.remove(tmp_path / "m" / "config.json")
    with pytest.raises(FileNotFoundError, match="config.json: not found"):
        type(model).from_pretrained(tmp_path / "m")


# ---------------------------------------------------------------- one rule for config.json keys
CONFIGS = [GPT_CFG, BERT_CFG, XLNET_CFG, LSTM_CFG, LSTM_CLS_CFG]
TRANSFORMERS_KEYS = {"torch_dtype": "float32", "transformers_version": "4.44.0", "_name_or_path": "somewhere",
                     "id2label": {"0": "LABEL_0"}, "architectures": ["Anything"], "use_cache": True}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_ignores_unknown_keys_requires_the_architecture_and_checks_the_math(cfg):
    cls = type(cfg)
    d = cfg.to_dict()
    assert cls.from_dict(d) == cfg
    assert cls.from_dict({**d, **TRANSFORMERS_KEYS}) == cfg
    assert "model_type" in cls.checked
    for key, accepted in cls.checked.items():
        assert d[key] == accepted[0]
        assert cls.from_dict({k: v for k, v in d.items() if k != key}) == cfg  # absent: what transformers assumes
        with pytest.raises(ValueError, match=f"^somewhere/config.json: {key} is 'other', expected"):
            cls.from_dict({**d, key: "other"}, "somewhere/config.json")
    assert cls.required
    for key in cls.required:  # a saved model's architecture is never filled in from the defaults
        with pytest.raises(ValueError, match=f"^somewhere/config.json: missing required key '{key}'$"):
            cls.from_dict({k: v for k, v in d.items() if k != key}, "somewhere/config.json")
