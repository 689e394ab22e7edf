"""PET's cloze prompts on a tiny random BERT: the verbalizer's scores by hand, the verbalizer loss against finite
differences (float64), the pattern's encoding, and pet_predict end to end from a saved checkpoint."""

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, to_host, xp
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.nn.gradcheck import assert_gradients_close, gradcheck, numerical_gradient, relative_error
from minillm.tasks.batching import pad_batch
from minillm.tasks.cloze import (cloze_encode, fine_tune, pet_predict, verbalizer_ids, verbalizer_logits_backward,
                                 verbalizer_logits_forward, verbalizer_loss, zero_shot_scores)
from minillm.tokenizers import WordPieceTokenizer

TEXTS = ["a great film , great acting", "a terrible film , terrible plot", "it was great", "it was terrible",
         "the plot was dull", "the acting was fine"]
PATTERN = "{text} it was [MASK] ."


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.train(TEXTS, vocab_size=150)


def _model(tokenizer, dtype="float64"):
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=32, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertForPreTraining(cfg, seed=0, dtype=dtype)


def test_cloze_encoding_keeps_the_pattern_and_cuts_the_text(tokenizer):
    ids = cloze_encode(tokenizer, "the plot was dull the plot was dull", PATTERN, max_length=10)
    assert len(ids) == 10 and ids.count(tokenizer.mask_id) == 1
    assert ids[-4:] == tokenizer.encode("it was [MASK] .")[1:] + [tokenizer.sep_id]  # the pattern's end survives
    assert ids[:3] == [tokenizer.cls_id] + tokenizer.encode("the plot")
    with pytest.raises(ValueError, match="one \\[MASK\\]"):
        cloze_encode(tokenizer, "x", "{text} it was .")


def test_verbalizer_words_must_be_one_piece(tokenizer):
    assert verbalizer_ids(tokenizer, ["terrible", "great"]) == [tokenizer.stoi["terrible"], tokenizer.stoi["great"]]
    with pytest.raises(ValueError, match="'marvellous' is"):
        verbalizer_ids(tokenizer, ["marvellous"])


def test_zero_shot_scores_are_the_mlm_log_probabilities_by_hand(tokenizer):
    model = _model(tokenizer)
    words = verbalizer_ids(tokenizer, ["terrible", "great"])
    encoded = [cloze_encode(tokenizer, t, PATTERN) for t in TEXTS[:3]]
    scores = zero_shot_scores(model, encoded, words, tokenizer.pad_id, tokenizer.mask_id)  # (3, 2)
    for row, ids in zip(scores, encoded):  # each text alone, every position scored, the mask's row read
        all_scores = to_host(model(xp.asarray([ids]))[0])[0]  # (T, V)
        s = all_scores[ids.index(tokenizer.mask_id)].astype(np.float64)
        log_p = s - np.log(np.exp(s - s.max()).sum()) - s.max()
        assert np.allclose(row, log_p[words], atol=1e-10)


@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(3, 7), st.integers(1, 3))
def test_verbalizer_logits_gradients(seed, b, v, n_words):
    rng = xp.random.default_rng(seed)
    scores, words = rng.standard_normal((b, v)), rng.permutation(v)[:n_words].tolist()
    cache = {}

    def forward(s):
        out, cache["c"] = verbalizer_logits_forward(s, words)
        return out

    assert_gradients_close(gradcheck(forward, lambda d: verbalizer_logits_backward(d, cache["c"]), [scores]),
                           ["input0"])


def test_the_verbalizer_loss_gradient_reaches_the_body_and_the_tied_embeddings(tokenizer):
    model = _model(tokenizer)
    words = verbalizer_ids(tokenizer, ["terrible", "great"])
    ids, mask = pad_batch([cloze_encode(tokenizer, t, PATTERN) for t in TEXTS[:4]], tokenizer.pad_id)
    labels = xp.asarray([1, 0, 1, 0])
    model.zero_grad()
    loss = verbalizer_loss(model, ids, mask, labels, words, tokenizer.mask_id)

    params = dict(model.named_parameters())
    lo, hi = min(words), max(words) + 1  # the word table's rows from one label word to the other: a view
    checked = (("bert.encoder.layer.0.attention.self.query.weight", slice(None)),
               ("bert.embeddings.word_embeddings.weight", slice(lo, hi)),  # tied decoder and lookup
               ("cls.predictions.transform.dense.weight", slice(None)))
    analytic = {name: params[name].grad[part].copy() for name, part in checked}  # before any perturbation
    for name, part in checked:
        p = params[name]

        def loss_only():
            model.zero_grad()
            return verbalizer_loss(model, ids, mask, labels, words, tokenizer.mask_id)

        numeric, resolution = numerical_gradient(loss_only, p.data[part])
        assert relative_error(analytic[name], numeric, resolution) < 1e-6, name
    assert loss > 0


def test_fine_tuning_lowers_the_loss_and_pet_predict_runs_from_a_checkpoint(tokenizer, tmp_path):
    model = _model(tokenizer, "float32")
    words = verbalizer_ids(tokenizer, ["terrible", "great"])
    encoded = [cloze_encode(tokenizer, t, PATTERN) for t in TEXTS[:4]]
    losses = fine_tune(model, encoded, [1, 0, 1, 0], words, tokenizer.pad_id, tokenizer.mask_id, steps=30, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    _model(tokenizer, "float32").save_pretrained(str(tmp_path), extra_files=tokenizer.save)
    zero = pet_predict([], [], TEXTS, ["negative", "positive"], "sentiment", 0, model_dir=str(tmp_path))
    tuned = pet_predict(TEXTS[:4], [1, 0, 1, 0], TEXTS[:4], ["negative", "positive"], "sentiment", 0,
                        model_dir=str(tmp_path), steps=30, lr=1e-2)
    assert len(zero) == len(TEXTS) and set(zero) <= {0, 1}
    assert tuned == [1, 0, 1, 0]  # four training texts, learnt
