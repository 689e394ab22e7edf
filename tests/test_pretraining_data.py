"""The MLM + NSP data pipeline over IMDB reviews."""

import os

import pytest

from minillm.backend import np
from minillm.data.datasets import dataset_path
from minillm.data.sentences import review_documents, split_sentences
from minillm.nn.loss import IGNORE_INDEX
from minillm.tasks.masked_lm import SpecialTokens, pretraining_batches

SPECIAL = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)


def test_split_sentences_rule():
    text = 'Great film. I laughed! Did you?<br /><br />He said "no." Then left...  End'
    assert split_sentences(text) == ["Great film.", "I laughed!", "Did you?", 'He said "no."', "Then left...", "End"]
    assert split_sentences("<br /> <br />") == []


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


def test_real_imdb_reviews_split_into_sentences():
    try:
        folder = dataset_path("imdb", "imdb/aclImdb/train/pos")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    with open(os.path.join(folder, "0_9.txt"), encoding="utf-8") as f:
        sentences = split_sentences(f.read())
    assert sentences[0] == "Bromwell High is a cartoon comedy."
    assert sentences[-1] == "What a pity that it isn't!" and len(sentences) == 11
