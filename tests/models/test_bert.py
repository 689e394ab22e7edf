"""BERT's encoder: whole-model gradient checks (through the pretraining heads), Hugging Face names and layouts,
BertModel's checkpoints."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.checkpoint import load_safetensors, save_safetensors
from minillm.models.bert import BertConfig, BertModel
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.nn import functional as F
from minillm.nn.gradcheck import gradcheck

V = 7


def tiny(seed=0, dtype="float64", **kw):
    cfg = BertConfig(**{**dict(vocab_size=V, hidden_size=4, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=6, max_position_embeddings=6, type_vocab_size=3,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), **kw})
    model = BertForPreTraining(cfg, seed=seed, dtype=dtype)
    rng = xp.random.default_rng(seed + 1)
    for name, p in model.named_parameters():  # larger than BERT's init so every path matters
        # LayerNorm gains near 1: six post-LN gains in series, each near 0, would starve the lower layers
        centre = 1.0 if name.endswith("LayerNorm.weight") else 0.0
        p.data = (centre + rng.standard_normal(p.shape) * 0.5).astype(dtype)
    return model


def random_batch(rng, b, t):
    """Ids avoid [PAD] = 0, whose row learns nothing from lookups (Hugging Face's padding_idx)."""
    ids = rng.integers(1, V, (b, t))
    types = rng.integers(0, 3, (b, t))
    mask = (rng.random((b, t)) < 0.7).astype(xp.int64)
    mask[:, 0] = 1  # [CLS] is always real
    return ids, types, mask


def assert_gradients_match(errors, model, tol=1e-6):
    """Relative errors <= tol, the scale floored at 1e-3 of the largest gradient in the model.

    A gradient that is nearly zero for a given input (a query bias when a row has
    one real key; the key biases, whose true gradient is zero because softmax
    ignores a shift shared by every key) has a relative error made of rounding.
    """
    norms = {n: float(xp.linalg.norm(p.grad)) for n, p in model.named_parameters() if p.requires_grad}
    floor = 1e-3 * max(norms.values())
    bad = {n: e for n, e in errors.items() if n in norms and e > tol * (1 + floor / (2 * norms[n] + 1e-300))}
    assert not bad, bad


def joined(model, **inputs):
    """Both heads' outputs as one flat array, and the backward that splits its gradient again."""
    def forward(*embeds):
        if embeds:
            inputs["inputs_embeds"] = embeds[0]
        scores, nsp = model(**inputs)
        model.shapes = scores.shape, nsp.shape
        return xp.concatenate([scores.ravel(), nsp.ravel()])

    def backward(dout):
        s_shape, n_shape = model.shapes
        cut = int(xp.prod(xp.asarray(s_shape)))
        return model.backward(dout[:cut].reshape(s_shape), dout[cut:].reshape(n_shape))

    return forward, backward


@given(st.integers(0, 2**31 - 1), st.integers(1, 2), st.integers(1, 5), st.booleans(), st.booleans())
def test_whole_bert_for_pretraining_gradients(seed, b, t, only_some_positions, dropout):
    """Every parameter, with random padding, token types, chosen MLM rows and (reseeded) dropout."""
    p = 0.2 if dropout else 0.0
    model = tiny(seed, hidden_dropout_prob=p, attention_probs_dropout_prob=p)
    rng = xp.random.default_rng(seed)
    ids, types, mask = random_batch(rng, b, t)
    scored = rng.random((b, t)) < 0.5 if only_some_positions else None
    forward, backward = joined(model, input_ids=ids, token_type_ids=types, attention_mask=mask,
                               mlm_mask=scored)

    def same_dropout_every_call():
        model.dropout_rng.reseed(seed)
        return forward()

    # eps 1e-5: six LayerNorms in series make rounding, not truncation (O(eps^2)), the larger error
    errors = gradcheck(same_dropout_every_call, backward, (), list(model.named_parameters()), eps=1e-5)
    assert len(errors) == len(model.parameters()) == 5 + 16 * 2 + 2 + 5 + 2
    assert_gradients_match(errors, model)
    # softmax ignores a bias shared by every key, so the key biases' true gradient is zero
    assert max(float(abs(model.bert.encoder.layer[i].attention.self.key.bias.grad).max()) for i in range(2)) < 1e-12


@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_gradient_reaches_the_embedding_output(seed, t):
    """inputs_embeds replaces the word lookup: its gradient is what the tables would get."""
    model = tiny(seed)
    rng = xp.random.default_rng(seed)
    _, types, mask = random_batch(rng, 2, t)
    embeds = rng.standard_normal((2, t, 4))
    forward, backward = joined(model, token_type_ids=types, attention_mask=mask)
    errors = gradcheck(forward, lambda d: (backward(d),), (embeds,), list(model.named_parameters()), eps=1e-5)
    assert errors["input0"] <= 1e-6, errors
    assert_gradients_match(errors, model)


def test_frozen_embeddings_skip_the_first_layers_input_gradient_and_change_no_other(monkeypatch):
    """Tables frozen (parameter-efficient fine-tuning): every other parameter gets the gradient it gets with
    them trained, and only layer 0's query, key and value skip their input products."""
    linear_backward = F.linear_backward
    rng = xp.random.default_rng(4)
    ids, types, mask = random_batch(rng, 2, 5)
    grads, skipped = [], []
    for freeze in (False, True):
        model = tiny(4)
        model.bert.embeddings.requires_grad_(not freeze)
        scores, nsp = model(ids, types, mask)
        flags = []

        def spy(dy, cache, weight_grad=True, bias_grad=True, input_grad=True):
            flags.append(input_grad)
            return linear_backward(dy, cache, weight_grad, bias_grad, input_grad)

        monkeypatch.setattr(F, "linear_backward", spy)
        assert model.backward(xp.ones_like(scores), xp.ones_like(nsp)) is None
        monkeypatch.setattr(F, "linear_backward", linear_backward)
        grads.append({n: p.grad for n, p in model.named_parameters() if ".embeddings." not in n})
        skipped.append(flags.count(False))
    assert skipped == [0, 3]
    assert max(float(abs(grads[0][n] - grads[1][n]).max()) for n in grads[0]) < 1e-12


def test_padding_is_invisible_to_real_tokens_and_pad_row_learns_nothing_from_lookups():
    model = tiny(3)
    ids = xp.array([[2, 3, 4, 0, 0]])
    mask = xp.array([[1, 1, 1, 0, 0]])
    scores, nsp = model(ids, attention_mask=mask)
    other, nsp2 = model(xp.array([[2, 3, 4, 5, 6]]), attention_mask=mask)
    assert float(abs(scores[:, :3] - other[:, :3]).max()) == 0.0 and float(abs(nsp - nsp2).max()) == 0.0
    model.zero_grad()
    model(ids, attention_mask=mask)
    model.backward(xp.zeros_like(scores), xp.ones_like(nsp))  # no MLM gradient: the decoder adds nothing
    assert float(abs(model.bert.embeddings.word_embeddings.weight.grad[2]).max()) > 0.0
    assert float(abs(model.bert.embeddings.word_embeddings.weight.grad[0]).max()) == 0.0


def test_hugging_face_names_and_layouts():
    cfg = BertConfig(vocab_size=11, hidden_size=6, num_hidden_layers=1, num_attention_heads=3,
                     intermediate_size=10, max_position_embeddings=9, type_vocab_size=2)
    shapes = {k: tuple(v.shape) for k, v in BertForPreTraining(cfg).state_dict().items()}
    layer = "bert.encoder.layer.0."
    expected = {
        "bert.embeddings.word_embeddings.weight": (11, 6), "bert.embeddings.position_embeddings.weight": (9, 6),
        "bert.embeddings.token_type_embeddings.weight": (2, 6),
        "bert.embeddings.LayerNorm.weight": (6,), "bert.embeddings.LayerNorm.bias": (6,),
        layer + "attention.self.query.weight": (6, 6), layer + "attention.self.query.bias": (6,),
        layer + "attention.self.key.weight": (6, 6), layer + "attention.self.key.bias": (6,),
        layer + "attention.self.value.weight": (6, 6), layer + "attention.self.value.bias": (6,),
        layer + "attention.output.dense.weight": (6, 6), layer + "attention.output.dense.bias": (6,),
        layer + "attention.output.LayerNorm.weight": (6,), layer + "attention.output.LayerNorm.bias": (6,),
        layer + "intermediate.dense.weight": (10, 6), layer + "intermediate.dense.bias": (10,),
        layer + "output.dense.weight": (6, 10), layer + "output.dense.bias": (6,),
        layer + "output.LayerNorm.weight": (6,), layer + "output.LayerNorm.bias": (6,),
        "bert.pooler.dense.weight": (6, 6), "bert.pooler.dense.bias": (6,),
        "cls.predictions.bias": (11,),
        "cls.predictions.transform.dense.weight": (6, 6), "cls.predictions.transform.dense.bias": (6,),
        "cls.predictions.transform.LayerNorm.weight": (6,), "cls.predictions.transform.LayerNorm.bias": (6,),
        "cls.seq_relationship.weight": (2, 6), "cls.seq_relationship.bias": (2,),
    }
    assert shapes == expected


def test_query_projection_is_stored_out_by_in():
    """A (out, in) weight: y = x W^T + b, checked on a non-square intermediate layer."""
    model = tiny(1)
    dense = model.bert.encoder.layer[0].intermediate.dense
    x = xp.random.default_rng(0).standard_normal((1, 2, 4))
    assert dense.weight.shape == (6, 4)
    assert float(abs(dense(x) - (x @ dense.weight.data.T + dense.bias.data)).max()) < 1e-12


def test_bert_model_loads_the_encoder_of_a_pretraining_checkpoint_and_saves_a_bare_one(tmp_path):
    model = tiny(3, dtype="float32").eval()
    model.save_pretrained(tmp_path / "pre")
    encoder = BertModel.from_pretrained(tmp_path / "pre").eval()  # the heads cls.* are not used
    encoder.save_pretrained(tmp_path / "enc")  # names without `bert.`, as sentence-transformers ships
    assert set(load_safetensors(tmp_path / "enc" / "model.safetensors")) == set(encoder.state_dict())
    again = BertModel.from_pretrained(tmp_path / "enc").eval()
    ids, mask = xp.array([[2, 5, 6, 0]]), xp.array([[1, 1, 1, 0]])
    for loaded in (encoder, again):
        for a, b in zip(loaded(ids, attention_mask=mask), model.bert(ids, attention_mask=mask)):
            assert float(abs(a - b).max()) == 0.0


def test_bert_model_names_the_file_and_the_tensor_it_cannot_place(tmp_path):
    tiny(3, dtype="float32").save_pretrained(tmp_path / "bad")
    path = tmp_path / "bad" / "model.safetensors"
    extra = {"bert.encoder.layer.7.output.dense.weight": xp.zeros((4, 6), dtype="float32")}
    save_safetensors(path, {**load_safetensors(path), **extra})
    with pytest.raises(ValueError, match=r"model\.safetensors: .*unexpected: encoder\.layer\.7\.output\.dense\.weight"):
        BertModel.from_pretrained(tmp_path / "bad")


def test_config_errors_name_the_field(tmp_path):
    cfg = BertConfig(vocab_size=5, hidden_size=4, num_attention_heads=2)
    for field, value in (("hidden_act", "relu"), ("model_type", "gpt2"), ("position_embedding_type", "relative_key")):
        with pytest.raises(ValueError, match=f"config.json: {field}"):
            BertConfig.from_dict({**cfg.to_dict(), field: value})
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=6, num_attention_heads=4)
    with pytest.raises(ValueError, match="max_position_embeddings=6"):
        tiny()(xp.ones((1, 7), dtype=xp.int64))


def test_float32_agrees_with_float64():
    model64 = tiny(8)
    model32 = tiny(8).astype("float32")
    rng = xp.random.default_rng(8)
    ids, types, mask = random_batch(rng, 3, 6)
    for a, b in zip(model32.eval()(ids, types, mask), model64.eval()(ids, types, mask)):
        assert a.dtype == xp.float32 and float(abs(a - b).max() / abs(b).max()) < 1e-5
