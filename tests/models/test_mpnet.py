"""MPNet's encoder: RoBERTa's position ids, whole-model gradient checks with the shared relative bias,
Hugging Face's MPNet names in checkpoint files."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import to_host, xp
from minillm.checkpoint import load_safetensors, read_json
from minillm.models.auto import load_encoder
from minillm.models.mpnet import MPNetConfig, MPNetModel
from minillm.nn.gradcheck import gradcheck
from minillm.nn.layers import RandomSource
from tests.models.test_bert import assert_gradients_match

V, PAD = 7, 1


def tiny(seed=0, dtype="float64", **kw):
    cfg = MPNetConfig(**{**dict(vocab_size=V, hidden_size=4, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=6, max_position_embeddings=8, relative_attention_num_buckets=8,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), **kw})
    model = MPNetModel(cfg, xp.random.default_rng(seed), RandomSource(seed), dtype)
    rng = xp.random.default_rng(seed + 1)
    for name, p in model.named_parameters():  # larger than the init so every path matters (as test_bert's)
        centre = 1.0 if name.endswith("LayerNorm.weight") else 0.0
        p.data = (centre + rng.standard_normal(p.shape) * 0.5).astype(dtype)
    return model


def random_batch(rng, b, t):
    """Right-padded rows of real ids (not <pad> = 1), the first token always real."""
    ids = rng.integers(2, V, (b, t))
    mask = xp.ones((b, t), dtype=xp.int64)
    for row, n in enumerate(rng.integers(1, t + 1, b).tolist()):
        ids[row, n:], mask[row, n:] = PAD, 0
    return ids, mask


def joined(model, **inputs):
    """The sequence output at real tokens and the pooled <s> as one flat array, and the backward that splits
    its gradient. Padding's outputs are left out: they read the tables' padding rows, which by design
    (PyTorch's padding_idx) learn nothing, so finite differences would disagree there."""
    real = inputs["attention_mask"][..., None]  # (B, T, 1)

    def forward(*embeds):
        if embeds:
            inputs["inputs_embeds"] = embeds[0]
        seq, pooled = model(**inputs)
        model.shapes = seq.shape
        return xp.concatenate([(seq * real).ravel(), pooled.ravel()])

    def backward(dout):
        cut = int(xp.prod(xp.asarray(model.shapes)))
        return model.backward(dout[:cut].reshape(model.shapes) * real, dout[cut:].reshape(model.shapes[0], -1))

    return forward, backward


@given(st.integers(0, 2**31 - 1), st.integers(1, 2), st.integers(1, 5), st.booleans())
def test_whole_mpnet_gradients(seed, b, t, dropout):
    """Every parameter, the relative bias table shared by both layers included, with random padding."""
    p = 0.2 if dropout else 0.0
    model = tiny(seed, hidden_dropout_prob=p, attention_probs_dropout_prob=p)
    ids, mask = random_batch(xp.random.default_rng(seed), b, t)
    forward, backward = joined(model, input_ids=ids, attention_mask=mask)

    def same_dropout_every_call():
        model.embeddings.dropout.source.reseed(seed)
        return forward()

    errors = gradcheck(same_dropout_every_call, backward, (), list(model.named_parameters()), eps=1e-5)
    assert len(errors) == len(model.parameters()) == 4 + 1 + 16 * 2 + 2
    assert_gradients_match(errors, model)


@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_gradient_reaches_the_inputs_embeddings(seed, t):
    model = tiny(seed)
    _, mask = random_batch(xp.random.default_rng(seed), 2, t)
    embeds = xp.random.default_rng(seed + 2).standard_normal((2, t, 4))
    forward, backward = joined(model, attention_mask=mask)
    model.embeddings.word_embeddings.requires_grad_(False)  # not read: inputs_embeds replaces the lookup
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    errors = gradcheck(forward, lambda d: (backward(d),), (embeds,), trained, eps=1e-5)
    assert errors["input0"] <= 1e-6, errors
    assert len(errors) == 1 + len(model.parameters()) - 1
    assert_gradients_match(errors, model)


def test_position_ids_count_real_tokens_from_the_padding_index_plus_one():
    model = tiny(0)
    ids = xp.array([[0, 5, 6, 2, PAD, PAD], [0, PAD, 4, 2, 3, PAD]])
    assert to_host(model.embeddings.position_ids(ids, 6)).tolist() == [[2, 3, 4, 5, 1, 1], [2, 1, 3, 4, 5, 1]]
    assert to_host(model.embeddings.position_ids(None, 3)).tolist() == [[2, 3, 4]]  # inputs_embeds: all real


def test_padding_is_invisible_to_real_tokens_and_the_padding_rows_learn_nothing():
    model = tiny(3)
    seq, pooled = model(xp.array([[0, 3, 4, PAD, PAD]]), attention_mask=xp.array([[1, 1, 1, 0, 0]]))
    alone, pooled_alone = model(xp.array([[0, 3, 4]]), attention_mask=xp.array([[1, 1, 1]]))
    assert float(abs(seq[:, :3] - alone).max()) < 1e-12 and float(abs(pooled - pooled_alone).max()) < 1e-12
    model.zero_grad()
    model(xp.array([[0, 3, 4, PAD, PAD]]), attention_mask=xp.array([[1, 1, 1, 0, 0]]))
    model.backward(xp.ones_like(seq))
    for table, used in ((model.embeddings.word_embeddings, 3), (model.embeddings.position_embeddings, 2)):
        assert float(abs(table.weight.grad[PAD]).max()) == 0.0 and float(abs(table.weight.grad[used]).max()) > 0.0


def test_one_bias_table_serves_every_layer():
    model = tiny(1)
    table = model.encoder.relative_attention_bias.weight
    ids, mask = random_batch(xp.random.default_rng(1), 2, 4)
    before, _ = model(ids, attention_mask=mask)
    table.data[:] += 1.0  # the same shift of every score of every head: softmax does not see it
    after, _ = model(ids, attention_mask=mask)
    assert float(abs(before - after).max()) < 1e-12
    table.data[0, 0] += 3.0  # the diagonal of head 0, in both layers
    assert float(abs(model(ids, attention_mask=mask)[0] - before).max()) > 1e-3


def test_hugging_face_names_in_files_and_loading_back(tmp_path):
    model = tiny(2, dtype="float32").eval()
    model.save_pretrained(tmp_path / "mpnet")
    layer = "encoder.layer.0."
    expected = {
        "embeddings.word_embeddings.weight": (V, 4), "embeddings.position_embeddings.weight": (8, 4),
        "embeddings.LayerNorm.weight": (4,), "embeddings.LayerNorm.bias": (4,),
        "encoder.relative_attention_bias.weight": (8, 2),
        **{layer + f"attention.attn.{p}.{w}": (4, 4) if w == "weight" else (4,) for p in "qkvo"
           for w in ("weight", "bias")},
        layer + "attention.LayerNorm.weight": (4,), layer + "attention.LayerNorm.bias": (4,),
        layer + "intermediate.dense.weight": (6, 4), layer + "intermediate.dense.bias": (6,),
        layer + "output.dense.weight": (4, 6), layer + "output.dense.bias": (4,),
        layer + "output.LayerNorm.weight": (4,), layer + "output.LayerNorm.bias": (4,),
        "pooler.dense.weight": (4, 4), "pooler.dense.bias": (4,),
    }
    tensors = load_safetensors(tmp_path / "mpnet" / "model.safetensors")
    assert {n: tuple(a.shape) for n, a in tensors.items() if not n.startswith("encoder.layer.1.")} == expected
    config = read_json(tmp_path / "mpnet" / "config.json")
    assert config["model_type"] == "mpnet" and "type_vocab_size" not in config
    # transformers' MPNetForMaskedLM layout: `mpnet.` before the body, its lm_head not used
    prefixed = {"mpnet." + n: a for n, a in tensors.items()}
    prefixed["lm_head.bias"] = xp.zeros(V, dtype="float32")
    prefixed["mpnet.embeddings.position_ids"] = xp.arange(8)[None]
    again = tiny(5, dtype="float32").eval()
    again.load_pretrained_state(prefixed)
    loaded = load_encoder(str(tmp_path / "mpnet")).eval()
    assert isinstance(loaded, MPNetModel)
    ids, mask = random_batch(xp.random.default_rng(0), 2, 5)
    for other in (again, loaded):
        for a, b in zip(other(ids, attention_mask=mask), model(ids, attention_mask=mask)):
            assert float(abs(a - b).max()) == 0.0


def test_longest_input_and_config_errors():
    model = tiny(0)  # 8 positions: pad + 1 .. pad + 6
    assert model.config.max_tokens == 6
    model(xp.full((1, 6), 3))
    with pytest.raises(ValueError, match="7 tokens is longer than MPNet's 6"):
        model(xp.full((1, 7), 3))
    with pytest.raises(ValueError, match="pruning is not implemented"):
        MPNetConfig(pruned_heads={"0": [1]})
    with pytest.raises(ValueError, match="model_type is 'bert'"):
        MPNetConfig.from_dict({**MPNetConfig().to_dict(), "model_type": "bert"})
