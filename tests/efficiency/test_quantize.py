"""Quantized checkpoints: what is stored, that they load back as they were, the errors a bad one gives."""

import json
import os

import pytest

from minillm.backend import np, to_host, xp
from minillm.checkpoint import load_safetensors, save_safetensors
from minillm.cli import sample
from minillm.efficiency.quantize import layer_sensitivity, quantize_checkpoint
from minillm.models.auto import load_model
from minillm.nn.quantized import QuantizationScheme


@pytest.mark.parametrize("scheme", [QuantizationScheme("int8", "int8"), QuantizationScheme("int4", group_size=32)])
def test_a_quantized_gpt_saves_loads_and_samples(tiny_gpt_run, tmp_path, scheme, capsys):
    source = tiny_gpt_run / "checkpoint"
    model = quantize_checkpoint(str(source), str(tmp_path / "q"), scheme)
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["quantization_config"] == scheme.to_dict() and config["architectures"] == ["GPT2LMHeadModel"]
    tensors = load_safetensors(str(tmp_path / "q" / "model.safetensors"))
    wte, c_attn = "transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"
    if scheme.weights == "int8":
        assert tensors[wte].dtype == np.int8 and tensors[c_attn].shape == (64, 192)  # GPT-2's (in, out) kept
        assert tensors[c_attn + "_scale"].shape == (192,)
    else:
        assert tensors[c_attn].dtype == np.uint8 and tensors[c_attn].shape == (192, 32)  # (out, in / 2)
        assert tensors[c_attn + "_scale"].shape == (192, 2)
    assert tensors["transformer.ln_f.weight"].dtype == np.float32
    loaded = load_model(str(tmp_path / "q"))
    ids = xp.asarray([[1, 2, 3, 4]])
    assert (to_host(loaded(ids)) == to_host(model(ids))).all()
    float_logits = to_host(load_model(str(source))(ids))
    tolerance = 0.05 if scheme.weights == "int8" else 0.25  # int4 has 15 levels a group
    assert np.abs(to_host(loaded(ids)) - float_logits).max() < tolerance * np.abs(float_logits).max()
    ratio = os.path.getsize(tmp_path / "q" / "model.safetensors") / os.path.getsize(source / "model.safetensors")
    assert ratio < (0.3 if scheme.weights == "int8" else 0.2)
    texts = sample.main(["--out-dir", str(tmp_path / "q"), "--max-new-tokens", "5"])
    assert len(texts) == 1 and len(texts[0]) >= 5


def test_loading_errors_name_the_file_and_tensor(tiny_gpt_run, tmp_path):
    quantize_checkpoint(str(tiny_gpt_run / "checkpoint"), str(tmp_path / "q"), QuantizationScheme("int8"))
    with pytest.raises(ValueError, match="quantized already"):
        quantize_checkpoint(str(tmp_path / "q"), str(tmp_path / "qq"), QuantizationScheme("int8"))
    path = tmp_path / "q" / "model.safetensors"
    tensors = load_safetensors(str(path))
    tensors["transformer.h.0.mlp.c_fc.weight"] = tensors["transformer.h.0.mlp.c_fc.weight"].astype(np.float32)
    save_safetensors(str(path), tensors)
    with pytest.raises(ValueError, match=r"model.safetensors: tensor 'transformer.h.0.mlp.c_fc.weight' is float32"):
        load_model(str(tmp_path / "q"))
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    config["quantization_config"]["weights"] = "int3"
    (tmp_path / "q" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: quantization_config: .*'int3'"):
        load_model(str(tmp_path / "q"))


def test_layer_sensitivity_quantizes_one_layer_at_a_time(tiny_gpt_run):
    model = load_model(str(tiny_gpt_run / "checkpoint"))
    ids = xp.asarray([[1, 2, 3, 4]])
    exact = to_host(model(ids))
    scores = layer_sensitivity(model, QuantizationScheme("int8", "int8"),
                               lambda m: float(np.abs(to_host(m(ids)) - exact).max()))
    assert sorted(scores) == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                              "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj", "transformer.wpe",
                              "transformer.wte"]
    assert all(v > 0 for v in scores.values())
    assert (to_host(model(ids)) == exact).all()  # every layer is back in float
