"""Fine-tuning heads: pooling gradients, the GPT classifier, label alignment, span decoding."""

from hypothesis import given, strategies as st

from minillm.backend import xp
from minillm.models.gpt import GPTConfig
from minillm.models.heads import GPTForSequenceClassification
from minillm.nn import functional as F
from minillm.nn.gradcheck import gradcheck

seeds = st.integers(0, 2**31 - 1)


def tiny_token_classifiers(seed):
    """A GPT and a BERT token classifier (3 labels, float64, no dropout) with every weight drawn at random."""
    from minillm.models.bert import BertConfig
    from minillm.models.heads import BertForTokenClassification, GPTForTokenClassification

    gpt = GPTForTokenClassification(GPTConfig(vocab_size=7, n_positions=6, n_embd=4, n_layer=1, n_head=2,
                                              resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
                                    ["O", "B-X", "I-X"], seed=seed, dtype="float64")
    bert = BertForTokenClassification(BertConfig(vocab_size=7, hidden_size=4, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=8, max_position_embeddings=6,
                                                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                                      ["O", "B-X", "I-X"], seed=seed, dtype="float64")
    rng = xp.random.default_rng(seed)
    for model in (gpt, bert):
        for name, p in model.named_parameters():
            p.data = (1.0 if name.endswith(("LayerNorm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight"))
                      else 0.0) + rng.standard_normal(p.shape) * 0.5
    return gpt, bert


@given(seeds, st.integers(1, 3), st.integers(1, 5), st.integers(1, 4))
def test_pooling_gradients(seed, b, t, c):
    rng = xp.random.default_rng(seed)
    h = rng.standard_normal((b, t, c))
    positions = rng.integers(0, t, b)
    state = {}

    def gather(h):
        out, state["g"] = F.gather_positions_forward(h, positions)
        return out

    assert max(gradcheck(gather, lambda d: F.gather_positions_backward(d, state["g"]), (h,)).values()) <= 1e-6
    mask = (rng.random((b, t)) < 0.6).astype(xp.int64)
    mask[:, 0] = 1

    def mean(h):
        out, state["m"] = F.masked_mean_forward(h, mask)
        return out

    assert max(gradcheck(mean, lambda d: F.masked_mean_backward(d, state["m"]), (h,)).values()) <= 1e-6
    expected = [(h[i][mask[i] == 1]).mean(axis=0) for i in range(b)]
    assert float(abs(mean(h) - xp.stack(expected)).max()) < 1e-12


@given(seeds, st.integers(1, 3), st.integers(1, 5))
def test_gpt_sequence_classifier_gradients_and_padding(seed, b, t):
    cfg = GPTConfig(vocab_size=7, n_positions=6, n_embd=4, n_layer=1, n_head=2)
    model = GPTForSequenceClassification(cfg, ["a", "b", "c"], seed=seed, dtype="float64")
    rng = xp.random.default_rng(seed)
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape) * 0.5
    idx = rng.integers(0, 7, (b, t))
    lengths = rng.integers(1, t + 1, b)
    mask = (xp.arange(t)[None, :] < lengths[:, None]).astype(xp.int64)  # right padding
    errors = gradcheck(lambda: model(idx, mask), model.backward, (), list(model.named_parameters()))
    assert max(errors.values()) <= 1e-6, errors
    # the logits of a padded sequence equal those of the same sequence alone, unpadded
    alone = model(idx[:1, :int(lengths[0])], mask[:1, :int(lengths[0])])
    assert float(abs(alone - model(idx, mask)[:1]).max()) < 1e-12


@given(seeds, st.integers(1, 3), st.integers(2, 5))
def test_bert_sequence_classifier_gradients(seed, b, t):
    from minillm.models.bert import BertConfig
    from minillm.models.heads import BertForSequenceClassification

    cfg = BertConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                     max_position_embeddings=6, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(cfg, ["x", "y"], seed=seed, dtype="float64")
    rng = xp.random.default_rng(seed)
    for name, p in model.named_parameters():
        p.data = (1.0 if name.endswith("LayerNorm.weight") else 0.0) + rng.standard_normal(p.shape) * 0.5
    idx = rng.integers(1, 9, (b, t))
    mask = (xp.arange(t)[None, :] < rng.integers(1, t + 1, b)[:, None]).astype(xp.int64)
    errors = gradcheck(lambda: model(idx, mask), model.backward, (), list(model.named_parameters()), eps=1e-5)
    # softmax ignores a shift shared by every key, so the key bias has no gradient: 0 analytic, 0 numeric
    assert max(errors.values()) <= 1e-6, errors


@given(seeds, st.integers(1, 3), st.integers(2, 5), st.booleans())
def test_mpnet_sequence_classifier_gradients(seed, b, t, dropout):
    """RoBERTa's head on <s> over an MPNet (right padding with <pad> = 1), dropout reseeded each call."""
    from minillm.models.heads import MPNetForSequenceClassification
    from minillm.models.mpnet import MPNetConfig

    p = 0.2 if dropout else 0.0
    cfg = MPNetConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                      max_position_embeddings=8, relative_attention_num_buckets=8, hidden_dropout_prob=p,
                      attention_probs_dropout_prob=p)
    model = MPNetForSequenceClassification(cfg, ["x", "y", "z"], seed=seed, dtype="float64")
    rng = xp.random.default_rng(seed)
    for name, param in model.named_parameters():
        param.data = (1.0 if name.endswith("LayerNorm.weight") else 0.0) + rng.standard_normal(param.shape) * 0.5
    mask = (xp.arange(t)[None, :] < rng.integers(1, t + 1, b)[:, None]).astype(xp.int64)
    idx = xp.where(mask == 1, rng.integers(2, 9, (b, t)), 1)

    def forward():
        model.dropout_rng.reseed(seed)
        return model(idx, mask)

    errors = gradcheck(forward, model.backward, (), list(model.named_parameters()), eps=1e-5)
    assert len(errors) == len(model.parameters()) == 4 + 1 + 16 + 4
    assert max(errors.values()) <= 1e-6, errors


def test_mpnet_classifier_starts_from_an_encoder_and_saves_hugging_face_names(tmp_path):
    from minillm.checkpoint import load_safetensors
    from minillm.models.heads import MPNetForSequenceClassification
    from minillm.models.mpnet import MPNetConfig, MPNetModel
    from minillm.nn.layers import RandomSource

    cfg = MPNetConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                      max_position_embeddings=8, relative_attention_num_buckets=8)
    encoder = MPNetModel(cfg, xp.random.default_rng(3), RandomSource(3), "float32")
    encoder.save_pretrained(tmp_path / "encoder")  # bare names, as sentence-transformers ships all-mpnet-base-v2
    model = MPNetForSequenceClassification(cfg, ["neg", "pos"])
    fresh, unused = model.load_backbone(load_safetensors(tmp_path / "encoder" / "model.safetensors"))
    assert fresh == ["classifier.dense.bias", "classifier.dense.weight", "classifier.out_proj.bias",
                     "classifier.out_proj.weight"]
    assert unused == ["mpnet.pooler.dense.bias", "mpnet.pooler.dense.weight"]
    model.eval().save_pretrained(tmp_path / "tuned")
    names = set(load_safetensors(tmp_path / "tuned" / "model.safetensors"))
    assert "mpnet.encoder.layer.0.attention.attn.q.weight" in names and "mpnet.encoder.relative_attention_bias.weight" \
        in names and not any(".attention.self." in n for n in names)
    again = MPNetForSequenceClassification.from_pretrained(tmp_path / "tuned").eval()
    idx, mask = xp.array([[0, 5, 6, 2, 1]]), xp.array([[1, 1, 1, 1, 0]])
    assert float(abs(again(idx, mask) - model(idx, mask)).max()) == 0.0 and again.label_names == ["neg", "pos"]


@given(seeds, st.integers(1, 3), st.integers(1, 5))
def test_token_classifier_gradients_and_padding(seed, b, t):
    rng = xp.random.default_rng(seed + 1)
    idx = rng.integers(1, 7, (b, t))
    lengths = rng.integers(1, t + 1, b)
    mask = (xp.arange(t)[None, :] < lengths[:, None]).astype(xp.int64)  # right padding
    for model in tiny_token_classifiers(seed):
        logits = model(idx, mask)
        assert logits.shape == (b, t, 3)
        errors = gradcheck(lambda: model(idx, mask), model.backward, (), list(model.named_parameters()), eps=1e-5)
        assert max(errors.values()) <= 1e-6, (type(model).__name__, errors)
        # a padded sequence's real positions get the logits of the same sequence alone
        n = int(lengths[0])
        assert float(abs(model(idx[:1, :n], mask[:1, :n]) - logits[:1, :n]).max()) < 1e-12


def test_bert_token_classifier_has_no_pooler_and_leaves_a_checkpoints_unused():
    from minillm.models.bert import BertConfig
    from minillm.models.bert_pretraining import BertForPreTraining
    from minillm.models.heads import BertForTokenClassification

    cfg = BertConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                     max_position_embeddings=6)
    model = BertForTokenClassification(cfg, ["O", "B-PER"])
    assert not any(n.startswith("bert.pooler.") for n, _ in model.named_parameters())
    pretrained = BertForPreTraining(cfg, seed=3)
    fresh, unused = model.load_backbone(pretrained.state_dict())
    assert fresh == ["classifier.bias", "classifier.weight"]
    assert "bert.pooler.dense.weight" in unused and all(n.startswith(("cls.", "bert.pooler.")) for n in unused)
    assert (model.bert.encoder.layer[0].output.dense.weight.data
            == pretrained.bert.encoder.layer[0].output.dense.weight.data).all()


@given(seeds, st.integers(1, 3), st.integers(2, 5))
def test_bert_question_answering_gradients_and_padding(seed, b, t):
    from minillm.models.bert import BertConfig
    from minillm.models.heads import BertForQuestionAnswering

    cfg = BertConfig(vocab_size=9, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                     max_position_embeddings=6, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForQuestionAnswering(cfg, seed=seed, dtype="float64")
    assert model.bert.pooler is None and {n for n, _ in model.named_parameters() if "pooler" in n} == set()
    rng = xp.random.default_rng(seed)
    for name, p in model.named_parameters():
        p.data = (1.0 if name.endswith("LayerNorm.weight") else 0.0) + rng.standard_normal(p.shape) * 0.5
    idx = rng.integers(1, 9, (b, t))
    types = rng.integers(0, 2, (b, t))
    lengths = rng.integers(1, t + 1, b)
    mask = (xp.arange(t)[None, :] < lengths[:, None]).astype(xp.int64)

    def both():  # (B, T, 2): start and end logits side by side, so gradcheck sees one output
        return xp.stack(model(idx, mask, types), axis=-1)

    # softmax ignores a shift shared by every key, so the key bias has no gradient: its finite differences
    # are rounding noise alone, which a relative error would compare with the analytic zero
    key_bias = "bert.encoder.layer.0.attention.self.key.bias"
    params = [(n, p) for n, p in model.named_parameters() if n != key_bias]
    errors = gradcheck(both, lambda d: model.backward(d[..., 0], d[..., 1]), (), params, eps=1e-5)
    assert max(errors.values()) <= 1e-6, errors
    assert float(abs(model.bert.encoder.layer[0].attention.self.key.bias.grad).max()) < 1e-12
    # a padded row's logits at its real positions equal those of the same row alone
    n = int(lengths[0])
    alone = xp.stack(model(idx[:1, :n], mask[:1, :n], types[:1, :n]), axis=-1)
    assert float(abs(alone - both()[:1, :n]).max()) < 1e-12
