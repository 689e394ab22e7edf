"""XLNet: permutation-LM masks, two-stream gradient checks, no leakage of the target token, checkpoints."""

import json

import pytest
from hypothesis import given, strategies as st

from minillm.backend import host_rng, np, xp
from minillm.models.xlnet import XLNetConfig, XLNetLMHeadModel, alibi_init
from minillm.nn.gradcheck import gradcheck, gradcheck_module
from minillm.nn.loss import IGNORE_INDEX
from minillm.tasks.permutation_lm import permutation_lm_batch, plm_loss

V = 9


def tiny(seed=0, dtype="float64", **kw):
    cfg = XLNetConfig(**{**dict(vocab_size=V, d_model=4, n_layer=2, n_head=2, d_inner=6, dropout=0.0,
                                max_position_embeddings=6), **kw})
    model = XLNetLMHeadModel(cfg, seed=seed, dtype=dtype)
    rng = xp.random.default_rng(seed + 1)
    for name, p in model.named_parameters():  # larger than the init, so every path carries gradient
        centre = 1.0 if name.endswith("layer_norm.weight") else 0.0
        p.data = (centre + rng.standard_normal(p.shape) * 0.5).astype(dtype)
    return model.eval()


def plm(seed, b, t, **kw):
    rng = host_rng(seed)
    return permutation_lm_batch(rng.integers(0, V, (b, t)), rng, **kw)


@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(2, 9), st.integers(0, 3))
def test_masks_follow_the_factorization_order(seed, b, t, n_pad):
    rng = host_rng(seed)
    ids = rng.integers(1, V, (b, t + n_pad))
    ids[:, t:] = 0  # trailing padding
    batch = permutation_lm_batch(ids, rng, predict_ratio=0.5, pad_id=0)
    ranks, content, query = batch["perm_ranks"], batch["content_mask"], batch["query_mask"]
    for r in range(b):
        assert sorted(ranks[r, :t]) == list(range(t))  # a permutation of the real positions
        order = np.argsort(ranks[r, :t])
        for step, i in enumerate(order):
            before = set(order[:step].tolist())
            assert set(np.flatnonzero(query[r, i]).tolist()) == before  # exactly the earlier ones, never itself
            assert set(np.flatnonzero(content[r, i]).tolist()) == before | {i}  # and itself
        assert not content[r, :, t:].any() and not query[r, :, t:].any()  # padding is never seen
        predicted = np.flatnonzero(batch["labels"][r] != IGNORE_INDEX)
        # the last ranks of the order, at least one, never the first (it would see nothing)
        assert sorted(ranks[r, predicted]) == list(range(t - len(predicted), t))
        assert len(predicted) == min(max(round(0.5 * t), 1), t - 1)
        assert (batch["labels"][r, predicted] == ids[r, predicted]).all()


def test_relative_bias_starts_as_alibi_distance_penalty():
    """b_h[d] = -m_h |d| with slopes 1/2 .. 1/16: row P - 1 is offset 0."""
    table = alibi_init(2, 4, "float64")  # (2P - 1, H) = (7, 2)
    distance = np.abs(np.arange(-3, 4))
    assert np.array_equal(table, -np.stack([distance / 2, distance / 16], axis=1))
    assert np.allclose(alibi_init(4, 2, "float64")[0], -np.array([1 / 2, 1 / 4, 1 / 8, 1 / 16]))
    model = XLNetLMHeadModel(XLNetConfig(vocab_size=V, d_model=4, n_head=2, d_inner=6, max_position_embeddings=4))
    assert np.array_equal(model.transformer.layer[1].attn.relative_attention_bias.data, table.astype("float32"))
    assert XLNetLMHeadModel(XLNetConfig(vocab_size=V, d_model=4, n_head=2, d_inner=6, relative_bias=False)) \
        .transformer.layer[0].attn.relative_attention_bias is None


def test_num_predict_and_short_sequences():
    assert (plm(0, 2, 8, num_predict=3)["labels"] != IGNORE_INDEX).sum(axis=1).tolist() == [3, 3]
    with pytest.raises(ValueError, match="sequence 0 has 1 real tokens"):
        permutation_lm_batch(np.array([[5, 0, 0]]), host_rng(0), pad_id=0)


@given(st.integers(0, 10_000), st.integers(1, 2), st.integers(2, 4))
def test_two_stream_layer_gradients(seed, b, t):
    """Both streams' inputs (x[0] = h, x[1] = g) and every parameter of one layer."""
    model = tiny(seed)
    batch = plm(seed, b, t, predict_ratio=0.5)
    query = batch["query_mask"] | (batch["perm_ranks"] == 0)[:, :, None]  # as the model lets the first attend
    mask = xp.stack([xp.asarray(batch["content_mask"]), xp.asarray(query)])[:, :, None]
    x = xp.random.default_rng(seed).standard_normal((2, b, t, 4))
    errors = gradcheck_module(model.transformer.layer[0], x, mask)
    assert set(errors) > {"input0", "attn.q.weight", "attn.k.weight", "attn.v.weight", "ff.layer_2.bias",
                          "attn.relative_attention_bias"}
    assert max(errors.values()) <= 1e-6, errors


@given(st.integers(0, 10_000), st.integers(1, 2), st.integers(3, 5), st.booleans(), st.booleans())
def test_whole_model_gradients(seed, b, t, scored_only, relative_bias):
    model = tiny(seed, relative_bias=relative_bias)
    batch = plm(seed, b, t, predict_ratio=0.5)
    predicted = batch["labels"] != IGNORE_INDEX if scored_only else None
    errors = gradcheck(lambda: model(batch["input_ids"], batch["content_mask"], batch["query_mask"], predicted),
                       lambda dlogits: model.backward(dlogits), (), list(model.named_parameters()))
    assert set(errors) == {n for n, _ in model.named_parameters()}
    assert "transformer.mask_emb" in errors and "transformer.word_embedding.weight" in errors
    assert max(errors.values()) <= 1e-6, errors


@given(st.integers(0, 10_000), st.integers(3, 6))
def test_query_stream_never_sees_its_own_token(seed, t):
    """g_L at i is the same whatever token sits at i, and changes with a token earlier in the order."""
    model = tiny(seed)
    batch = plm(seed, 1, t, predict_ratio=0.5)
    ranks = batch["perm_ranks"][0]
    order = np.argsort(ranks)

    def query_out(ids):
        return model(ids, batch["content_mask"], batch["query_mask"])[0]  # (T, V)

    base = query_out(batch["input_ids"])
    for step in range(1, t):  # the first in the order sees nothing and is never predicted
        i = order[step]
        ids = batch["input_ids"].copy()
        ids[0, i] = (ids[0, i] + 1) % V
        changed = np.abs(query_out(ids) - base).max(axis=-1)  # (T,)
        assert changed[i] == 0.0  # no leakage of the token at i into its own prediction
        later = ranks > step
        assert (changed[later] > 1e-9).all()  # every position later in the order does see it
        assert (changed[(ranks < step) & (ranks > 0)] == 0.0).all()  # and none earlier (but the first: see model)


def test_loss_and_gradients_of_the_objective():
    model = tiny(3)
    batch = plm(3, 2, 6, num_predict=2)
    model.zero_grad()
    loss, metrics = plm_loss(model, batch, backward=True)
    assert metrics["plm_count"] == 4 and 0 <= metrics["plm_correct"] <= 4
    logits = model(batch["input_ids"], batch["content_mask"], batch["query_mask"])  # (B, T, V), every position
    rows, cols = np.nonzero(batch["labels"] != IGNORE_INDEX)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert loss == pytest.approx(-logp[rows, cols, batch["labels"][rows, cols]].mean(), rel=1e-12)
    assert all(p.grad is not None for p in model.parameters())


def test_save_load_round_trip(tmp_path):
    model = tiny(5, dtype="float32")
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "minillm-xlnet" and config["d_model"] == 4
    again = XLNetLMHeadModel.from_pretrained(tmp_path / "m").eval()
    batch = plm(5, 2, 6)
    assert (again(batch["input_ids"], batch["content_mask"], batch["query_mask"])
            == model(batch["input_ids"], batch["content_mask"], batch["query_mask"])).all()
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ValueError, match="config.json: model_type is 'bert'"):
        XLNetLMHeadModel.from_pretrained(tmp_path / "m")
