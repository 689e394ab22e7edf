"""Quantization: round-trip error bounds, the exact integer product, int4 packing, quantized layers and models."""

import copy

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, to_host, xp
from minillm.models.bert import BertConfig
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.heads import BertForSequenceClassification
from minillm.nn.layers import Conv1D, Embedding, Linear
from minillm.nn.quantized import (EXACT_CHUNK, QuantizationScheme, QuantizedEmbedding, QuantizedLinear,
                                  dequantize_groups, dequantize_rows, int_matmul, pack_int4, quantize_groups,
                                  quantize_model, quantize_rows, unpack_int4)


def matrix(seed, rows, cols, scale=1.0):
    return (xp.random.default_rng(seed).standard_normal((rows, cols)) * scale).astype(xp.float32)


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(1, 40), st.floats(1e-3, 1e3))
def test_int8_round_trip_is_within_half_a_step(seed, rows, cols, scale):
    w = matrix(seed, rows, cols, scale)
    q, s = quantize_rows(w)
    assert q.dtype == xp.int8 and s.shape == (rows,)
    assert int(to_host(xp.abs(q).max())) == 127  # each row's largest entry uses the whole range
    error = xp.abs(dequantize_rows(q, s) - w)
    assert to_host(error <= s[:, None] / 2 * (1 + 1e-6)).all()


def test_a_row_of_zeros_quantizes_to_zeros():
    q, s = quantize_rows(xp.zeros((2, 3), dtype=xp.float32))
    assert not to_host(q).any() and (to_host(dequantize_rows(q, s)) == 0).all()


@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.sampled_from([2, 4, 8]), st.integers(1, 4))
def test_int4_groups_round_trip_and_pack(seed, rows, group, n_groups):
    w = matrix(seed, rows, group * n_groups)
    q, s = quantize_groups(w, group)
    assert s.shape == (rows, n_groups) and int(to_host(xp.abs(q).max())) <= 7
    error = xp.abs(dequantize_groups(q, s) - w)
    step = xp.repeat(s, group, axis=1)  # each entry's own group scale
    assert to_host(error <= step / 2 * (1 + 1e-6)).all()
    packed = pack_int4(q)
    assert packed.dtype == xp.uint8 and packed.shape == (rows, group * n_groups // 2)
    assert (to_host(unpack_int4(packed)) == to_host(q)).all()


def test_int4_packing_layout():
    """Entry 2k in the low nibble, 2k + 1 in the high one, each as q + 8."""
    packed = pack_int4(xp.asarray([[-8, 7, 0, -1]], dtype=xp.int8))
    assert to_host(packed).tolist() == [[0 | (15 << 4), 8 | (7 << 4)]]


@given(st.integers(0, 2**31 - 1), st.integers(1, 5), st.sampled_from([1, 7, EXACT_CHUNK, EXACT_CHUNK + 3, 2500]))
def test_int_matmul_is_the_exact_integer_product(seed, n, k):
    rng = np.random.default_rng(seed)
    a = np.full((n, k), 127, dtype=np.int8) if seed % 2 else rng.integers(-127, 128, (n, k)).astype(np.int8)
    b = np.full((k, 3), -127, dtype=np.int8) if seed % 2 else rng.integers(-127, 128, (k, 3)).astype(np.int8)
    out = to_host(int_matmul(xp.asarray(a), xp.asarray(b)))
    assert out.dtype == np.int32
    assert (out.astype(np.int64) == a.astype(np.int64) @ b.astype(np.int64)).all()


@pytest.mark.parametrize("mode", ["w8a8", "w8", "w4"])
@pytest.mark.parametrize("layout", [Linear, Conv1D])
def test_quantized_linear_is_close_to_float(mode, layout):
    scheme = {"w8a8": QuantizationScheme("int8", "int8"), "w8": QuantizationScheme("int8"),
              "w4": QuantizationScheme("int4", group_size=16)}[mode]
    layer = layout(64, 24, xp.random.default_rng(0), std=0.1)
    layer.bias.data = matrix(1, 1, 24)[0]
    x = matrix(2, 10, 64)
    q = QuantizedLinear(layer, scheme)
    assert q.weight.data.dtype == (xp.uint8 if mode == "w4" else xp.int8)
    assert q.weight.shape == ((24, 32) if mode == "w4" else layer.weight.shape)
    exact, approx = to_host(layer(x)), to_host(q(x))
    relative = np.abs(approx - exact).max() / np.abs(exact).max()
    assert relative < {"w8a8": 0.02, "w8": 0.01, "w4": 0.15}[mode]
    assert relative > 0  # it is quantized


def test_w8_equals_the_product_with_the_dequantized_weight():
    layer = Linear(32, 8, xp.random.default_rng(0), std=0.1)
    q = QuantizedLinear(layer, QuantizationScheme("int8"))
    x = matrix(1, 5, 32)
    reference = x @ q.dequantized().T + layer.bias.data
    assert float(to_host(xp.abs(q(x) - reference).max())) < 1e-5


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_quantized_embedding_lookup_and_head(weights):
    table = Embedding(9, 16, xp.random.default_rng(0), std=1.0)
    q = QuantizedEmbedding(table, QuantizationScheme(weights, group_size=8))
    idx = xp.asarray([[0, 3, 8], [1, 1, 2]])
    w = q.dequantized()
    assert (to_host(q(idx)) == to_host(w[idx])).all()
    h = matrix(3, 4, 16)
    logits, _ = q.logits_forward(h)
    assert float(to_host(xp.abs(logits - h @ w.T).max())) < 1e-4


def test_scheme_round_trip_and_errors():
    scheme = QuantizationScheme("int4", group_size=32, keep_float=["classifier"])
    assert QuantizationScheme.from_dict(scheme.to_dict()) == scheme
    assert scheme.mode == "w4"
    with pytest.raises(ValueError, match="int8 activations go with int8 weights"):
        QuantizationScheme("int4", "int8")
    with pytest.raises(ValueError, match="quant_method"):
        QuantizationScheme.from_dict({"quant_method": "gptq"})


def tiny_bert():
    cfg = BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=12, type_vocab_size=2)
    model = BertForSequenceClassification(cfg, ["neg", "pos"], seed=0)
    for p in model.parameters():  # larger than the init, so every layer changes the logits
        p.data = p.data * 10
    return model.eval()


def tiny_models():
    """(model, its logits on fixed inputs) for a BERT classifier and a GPT."""
    ids = xp.random.default_rng(0).integers(1, 20, (3, 7))
    mask = xp.ones((3, 7), dtype=xp.int64)
    gpt = GPT(GPTConfig(vocab_size=20, n_positions=8, n_embd=16, n_layer=2, n_head=2))
    return ((tiny_bert(), lambda m: m(ids, mask)), (gpt.eval(), lambda m: m(ids)))


@pytest.mark.parametrize("activations", [None, "int8"])
def test_int8_models_logits_are_close_to_float(activations):
    for model, run in tiny_models():
        exact = to_host(run(model))
        approx = to_host(run(quantize_model(model, QuantizationScheme("int8", activations))))
        assert 0 < np.abs(approx - exact).max() <= 0.05 * np.abs(exact).max()


@pytest.mark.parametrize("scheme", [QuantizationScheme("int8"), QuantizationScheme("int4", group_size=8)])
def test_weight_only_models_equal_float_models_of_the_dequantized_weights(scheme):
    """Weight-only quantization changes the weights and nothing else: the float model given the
    dequantized weights computes the same logits."""
    for model, run in tiny_models():
        quantized = quantize_model(copy.deepcopy(model), scheme)
        for name, layer in quantized.named_modules():
            if isinstance(layer, (QuantizedLinear, QuantizedEmbedding)):
                original = model
                for part in name.split("."):
                    original = getattr(original, part)
                original.weight.data = xp.ascontiguousarray(layer.dequantized())
        assert float(np.abs(to_host(run(quantized)) - to_host(run(model))).max()) < 1e-4


def test_quantize_model_replaces_every_layer_but_those_kept_float():
    model = quantize_model(tiny_bert(), QuantizationScheme("int8", keep_float=["classifier", "*.pooler.dense"]))
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    assert kinds["classifier"] == "Linear" and kinds["bert.pooler.dense"] == "Linear"
    assert kinds["bert.embeddings.word_embeddings"] == "QuantizedEmbedding"
    assert sum(k == "QuantizedLinear" for k in kinds.values()) == 2 * 6
    state = model.state_dict()
    assert state["bert.encoder.layer.0.attention.self.query.weight"].dtype == xp.int8
    assert state["bert.encoder.layer.0.attention.self.query.weight_scale"].shape == (16,)
    assert state["classifier.weight"].dtype == xp.float32
