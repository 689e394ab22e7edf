"""Masked language modelling and next-sentence prediction: masking, pairs, packing, the loss and its gradient, batches."""

import math

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, xp
from minillm.data.sentences import review_documents
from minillm.nn.gradcheck import numerical_gradient, relative_error
from minillm.nn.loss import IGNORE_INDEX
from minillm.tasks.masked_lm import (IS_NEXT, IS_RANDOM, MaskedLMTask, SpecialTokens, mask_tokens, mlm_nsp_loss,
                                     nsp_pairs, pack_pairs, pretraining_batches, truncate_seq_pair)

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4


SPECIAL = (PAD, UNK, CLS, SEP, MASK)


seeds = st.integers(0, 2**31 - 1)


def framed_batch(rng, b, t, vocab):
    """[CLS] ordinary tokens [SEP] [PAD]... rows of random real lengths."""
    ids = np.full((b, t), PAD)
    for r in range(b):
        n = int(rng.integers(3, t + 1))
        ids[r, :n] = [CLS, *rng.integers(5, vocab, n - 2), SEP]
    return ids


def within_binomial(k, n, p, sigmas=5):
    return abs(k - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def corpus(rng, n_docs, max_sents=8, max_len=9):
    """Token t = 1000 * doc + position in the doc, so every token says where it came from."""
    docs = []
    for d in range(n_docs):
        lengths = rng.integers(1, max_len + 1, int(rng.integers(1, max_sents + 1)))
        ends = np.cumsum(lengths)
        docs.append([list(range(1000 * d + e - n, 1000 * d + e)) for n, e in zip(lengths, ends)])
    return docs


def test_mlm_proportions_on_a_large_batch():
    rng = np.random.default_rng(0)
    vocab = 50
    ids = framed_batch(rng, 1000, 40, vocab)
    out, labels = mask_tokens(ids, SPECIAL, MASK, vocab, np.random.default_rng(1))
    candidates = (~np.isin(ids, SPECIAL)).sum(axis=1)
    chosen = labels != IGNORE_INDEX
    # exactly round(15%) of each row's ordinary tokens, at least one
    assert (chosen.sum(axis=1) == np.maximum(1, np.round(candidates * 0.15))).all()
    assert (labels[chosen] == ids[chosen]).all() and (out[~chosen] == ids[~chosen]).all()
    n = int(chosen.sum())
    masked = int((out[chosen] == MASK).sum())
    kept = int((out[chosen] == ids[chosen]).sum())
    swapped = n - masked - kept
    ordinary = vocab - len(SPECIAL)
    assert within_binomial(masked, n, 0.8)
    # a random replacement draws the original token again 1 time in `ordinary`
    assert within_binomial(swapped, n, 0.1 * (1 - 1 / ordinary))
    assert within_binomial(kept, n, 0.1 + 0.1 / ordinary)
    assert not within_binomial(masked, n, 0.75)  # the tolerance is tight enough to see 5 points


@given(seeds, st.integers(1, 6), st.integers(3, 30), st.booleans())
def test_special_tokens_are_never_chosen_nor_inserted(seed, b, t, whole_words):
    rng = np.random.default_rng(seed)
    ids = framed_batch(rng, b, t, 12)
    ids[rng.random(ids.shape) < 0.1] = UNK  # [UNK] inside the text is special too
    starts = rng.random(ids.shape) < 0.5 if whole_words else None
    out, labels = mask_tokens(ids, SPECIAL, MASK, 12, np.random.default_rng(seed + 1), word_starts=starts)
    special = np.isin(ids, SPECIAL)
    assert (labels[special] == IGNORE_INDEX).all() and (out[special] == ids[special]).all()
    changed = out != ids
    assert not np.isin(out[changed], (PAD, UNK, CLS, SEP)).any()  # only [MASK] or ordinary tokens come in
    if not whole_words:  # (a whole word longer than the budget is skipped, as in BERT)
        assert ((labels != IGNORE_INDEX).any(axis=1) == (~special).any(axis=1)).all()


@given(seeds)
def test_whole_word_masking_takes_every_piece_of_a_word(seed):
    rng = np.random.default_rng(seed)
    ids = framed_batch(rng, 20, 30, 40)
    starts = rng.random(ids.shape) < 0.4  # False: a `##` continuation of the word before
    _, labels = mask_tokens(ids, SPECIAL, MASK, 40, np.random.default_rng(seed + 1), word_starts=starts)
    chosen = labels != IGNORE_INDEX
    for r in range(len(ids)):
        ordinary = np.flatnonzero(~np.isin(ids[r], SPECIAL))
        word = np.cumsum(starts[r, ordinary] | (np.arange(len(ordinary)) == 0))
        for w in np.unique(word):
            picked = chosen[r, ordinary[word == w]]
            assert picked.all() or not picked.any(), (r, w)
        assert chosen[r].sum() <= max(1, round(len(ordinary) * 0.15))  # whole words that fit the budget


@given(seeds, st.integers(2, 8), st.integers(5, 40), st.floats(0.0, 1.0))
def test_nsp_pairs_come_from_the_right_documents_within_budget(seed, n_docs, max_len, short_p):
    docs = corpus(np.random.default_rng(seed), n_docs)
    pairs = nsp_pairs(docs, max_len, np.random.default_rng(seed + 1), short_seq_prob=short_p)
    assert pairs
    for p in pairs:
        assert 1 <= len(p.tokens_a) and 1 <= len(p.tokens_b) and len(p.tokens_a) + len(p.tokens_b) <= max_len - 3
        assert {t // 1000 for t in p.tokens_a} == {p.doc_a} and {t // 1000 for t in p.tokens_b} == {p.doc_b}
        if p.is_random_next:
            assert p.doc_b != p.doc_a
        else:
            assert p.doc_b == p.doc_a and max(p.tokens_a) < min(p.tokens_b)  # B follows A in the document
    batch = pack_pairs(pairs, max_len, CLS, SEP, PAD)
    real = batch["attention_mask"].sum(axis=1)
    assert (real == [len(p.tokens_a) + len(p.tokens_b) + 3 for p in pairs]).all()
    for r, p in enumerate(pairs):
        row = batch["input_ids"][r]
        assert row[0] == CLS and row[len(p.tokens_a) + 1] == SEP and row[real[r] - 1] == SEP
        assert (row[real[r]:] == PAD).all()
        assert (batch["token_type_ids"][r] == [0] * (len(p.tokens_a) + 2) + [1] * (len(p.tokens_b) + 1)
                + [0] * (max_len - real[r])).all()
        assert batch["next_sentence_label"][r] == (IS_RANDOM if p.is_random_next else IS_NEXT)


def test_half_of_the_pairs_are_random_on_long_documents():
    """A coin flip, plus the one-sentence chunks (often at a document's end) that force a random B."""
    docs = corpus(np.random.default_rng(0), 300, max_sents=40, max_len=4)
    pairs = nsp_pairs(docs, 64, np.random.default_rng(1), short_seq_prob=0.0)
    random_share = np.mean([p.is_random_next for p in pairs])
    assert len(pairs) > 400 and 0.45 < random_share < 0.6, (len(pairs), random_share)  # measured 0.557


def test_short_sequence_probability_shortens_targets():
    docs = corpus(np.random.default_rng(0), 200, max_sents=40, max_len=4)
    full = nsp_pairs(docs, 64, np.random.default_rng(1), short_seq_prob=0.0)
    short = nsp_pairs(docs, 64, np.random.default_rng(1), short_seq_prob=1.0)
    mean = lambda ps: np.mean([len(p.tokens_a) + len(p.tokens_b) for p in ps])  # noqa: E731
    assert mean(short) < 0.7 * mean(full)


def test_truncation_takes_from_the_longer_side_at_both_ends():
    a, b = list(range(10)), [100, 101]
    truncate_seq_pair(a, b, 8, np.random.default_rng(0))
    assert b == [100, 101] and len(a) == 6 and a == list(range(a[0], a[0] + 6))
    fronts = sum(truncate_seq_pair(x := list(range(10)), [], 5, np.random.default_rng(s)) or x[0] > 0
                 for s in range(50))
    assert 10 < fronts < 50  # sometimes the front, not always


def test_nsp_errors():
    with pytest.raises(ValueError, match="at least 2 non-empty documents"):
        nsp_pairs([[[1, 2]], [[]]], 16, np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_seq_length=4"):
        nsp_pairs([[[1]], [[2]]], 4, np.random.default_rng(0))


def test_mlm_nsp_loss_gradient_and_metrics():
    """The loss function's backward against finite differences of its own loss, every parameter."""
    from minillm.models.bert import BertConfig
    from minillm.models.bert_pretraining import BertForPreTraining

    cfg = BertConfig(vocab_size=12, hidden_size=4, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=6, max_position_embeddings=10, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = BertForPreTraining(cfg, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    for name, p in model.named_parameters():
        p.data = xp.asarray((1.0 if name.endswith("LayerNorm.weight") else 0.0) + rng.standard_normal(p.shape) * 0.5)
    docs = [[list(rng.integers(5, 12, 3)) for _ in range(4)] for _ in range(3)]
    batch = pack_pairs(nsp_pairs(docs, 10, rng)[:3], 10, CLS, SEP, PAD)
    batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], SPECIAL, MASK, 12, rng, 0.3)
    loss, metrics = mlm_nsp_loss(model, batch)
    assert metrics["mlm_count"] == int((batch["labels"] != IGNORE_INDEX).sum()) > 0
    assert metrics["nsp_count"] == 3 and 0 <= metrics["nsp_correct"] <= 3
    assert loss == pytest.approx(metrics["mlm_loss"] + metrics["nsp_loss"])
    for name, p in model.named_parameters():
        numeric, resolution = numerical_gradient(lambda: mlm_nsp_loss(model, batch, backward=False)[0], p.data,
                                                 eps=1e-5)
        analytic = p.grad if p.grad is not None else xp.zeros_like(p.data)
        assert relative_error(analytic, numeric, resolution) <= 1e-6, name
    model.zero_grad()
    mlm_only = {k: v for k, v in batch.items() if k != "next_sentence_label"}
    assert mlm_nsp_loss(model, mlm_only)[0] == pytest.approx(metrics["mlm_loss"])
    assert model.cls.seq_relationship.weight.grad is None  # MLM alone leaves the NSP head untouched


SPECIAL = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)


def word_encoder():
    vocab = {}
    return vocab, lambda s: [vocab.setdefault(w, len(vocab) + 5) for w in s.split()]


def toy_documents(n=40):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    texts = [" ".join(f"{' '.join(rng.choice(words, int(rng.integers(2, 9))))}." for _ in range(int(rng.integers(2, 9))))
             for _ in range(n)]
    vocab, encode = word_encoder()
    return review_documents(texts + ["<br />"], encode), len(vocab) + 5


def test_batches_are_ready_for_the_model_and_repeat_per_seed_and_epoch():
    docs, vocab_size = toy_documents()
    assert len(docs) == 40  # the empty review is dropped
    batches = list(pretraining_batches(docs, 4, 24, SPECIAL, vocab_size, seed=7, epoch=0))
    assert batches
    for batch in batches:
        assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"}
        assert batch["input_ids"].shape == (4, 24) and batch["input_ids"].dtype == np.int64
        assert (batch["input_ids"][:, 0] == SPECIAL.cls).all()
        assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
        assert ((batch["labels"] != IGNORE_INDEX).sum(axis=1) >= 1).all()
    again = list(pretraining_batches(docs, 4, 24, SPECIAL, vocab_size, seed=7, epoch=0))
    other = list(pretraining_batches(docs, 4, 24, SPECIAL, vocab_size, seed=7, epoch=1))
    assert all((a["input_ids"] == b["input_ids"]).all() for a, b in zip(batches, again))
    assert not all((a["input_ids"] == b["input_ids"]).all() for a, b in zip(batches, other))
    mlm_only = next(pretraining_batches(docs, 4, 24, SPECIAL, vocab_size, seed=7, nsp=False))
    assert "next_sentence_label" not in mlm_only


def test_whole_word_masking_from_the_vocabulary():
    docs, vocab_size = toy_documents()
    is_continuation = np.arange(vocab_size) % 2 == 1  # pretend odd ids are `##` pieces
    is_continuation[:5] = False
    for batch in pretraining_batches(docs, 4, 24, SPECIAL, vocab_size, seed=1, is_continuation=is_continuation):
        chosen = batch["labels"] != IGNORE_INDEX
        original = np.where(chosen, batch["labels"], batch["input_ids"])
        # a chosen continuation's word start (the token before it, same segment) is chosen too
        follows = chosen[:, 1:] & is_continuation[original[:, 1:]] & (original[:, :-1] > 4)
        assert (chosen[:, :-1][follows]).all()


def test_bert_held_out_pairs_do_not_depend_on_the_training_batch_size():
    rng = np.random.default_rng(0)
    docs = [[rng.integers(5, 50, rng.integers(3, 12)).tolist() for _ in range(6)] for _ in range(40)]
    special = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)
    small, large = (MaskedLMTask(None, docs, docs, batch_size, 24, special, 50, eval_iters=3)
                    for batch_size in (4, 16))
    assert len(small.val_batches) == 3 and small.val_batches[0]["input_ids"].shape == (MaskedLMTask.EVAL_ROWS, 24)
    for a, b in zip(small.val_batches, large.val_batches):
        assert all((a[k] == b[k]).all() for k in a)
    assert small.batch(0)["input_ids"].shape == (4, 24)
