"""EDA's four edits: each one's invariant with numbers, synonyms from a tiny hand-made embedding table."""

import collections

from minillm.backend import host_rng, np
from minillm.tasks.augmentation import (NeighbourTable, eda, random_deletion, random_insertion, random_swap,
                                        synonym_replacement)

# "good" is nearest "the" (a stopword, never chosen), then "great", then "bad"; "movie" is nearest "film"
TOKENS = ["[CLS]", "the", "good", "great", "bad", "movie", "film", "##s", "42"]
VECTORS = np.array([[9.0, 9.0, 9.0], [1.0, 0.05, 0.0], [1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.7, 0.7, 0.0],
                    [0.0, 0.0, 1.0], [0.0, 0.2, 1.0], [1.0, 0.0, 0.01], [1.0, 0.0, 0.0]])


def table():
    return NeighbourTable.from_vocabulary(TOKENS, VECTORS)


def test_the_table_holds_whole_words_and_ranks_neighbours_by_cosine():
    t = table()
    assert t.words == ["the", "good", "great", "bad", "movie", "film"]  # no [CLS], ##s or 42
    assert t.neighbours("Good", 2) == ["great", "bad"]  # never itself, never the stopword "the"
    assert t.neighbours("movie", 1) == ["film"]
    assert t.neighbours("the", 3) == [] and t.neighbours("unseen", 3) == []


def test_synonym_replacement_takes_the_nearest_neighbour():
    out = synonym_replacement(["the", "good", "movie"], 2, table(), host_rng(0), top_k=1)
    assert out == ["the", "great", "film"]
    once = synonym_replacement(["the", "good", "movie"], 1, table(), host_rng(0), top_k=1)
    assert sum(a != b for a, b in zip(once, ["the", "good", "movie"])) == 1


def test_insertion_adds_n_neighbours_and_keeps_the_words_in_order():
    words = ["the", "good", "movie"]
    out = random_insertion(words, 2, table(), host_rng(1), top_k=1)
    assert len(out) == 5
    rest = iter(out)
    assert all(w in rest for w in words)  # the originals, in order, are a subsequence
    added = collections.Counter(out) - collections.Counter(words)
    assert set(added) <= {"great", "film"} and sum(added.values()) == 2
    assert random_insertion(["the", "a"], 3, table(), host_rng(1), top_k=1) == ["the", "a"]  # nothing to insert


def test_swap_keeps_the_words_and_moves_at_most_two_per_swap():
    words = "a b c d e f g".split()
    for seed in range(5):
        out = random_swap(words, 1, host_rng(seed))
        assert sorted(out) == sorted(words) and sum(a != b for a, b in zip(out, words)) == 2
    assert sorted(random_swap(words, 10, host_rng(0))) == sorted(words)
    assert random_swap(["one"], 3, host_rng(0)) == ["one"]


def test_deletion_keeps_at_least_one_word():
    words = "a b c d e f g h".split()
    for seed in range(5):
        assert len(random_deletion(words, 1.0, host_rng(seed))) == 1
        assert random_deletion(words, 0.0, host_rng(seed)) == words
    kept = random_deletion(words * 100, 0.25, host_rng(0))
    assert 550 < len(kept) < 650  # 800 words, a quarter dropped on average


def test_eda_adds_n_aug_copies_with_their_labels_after_the_originals():
    texts, labels = ["the good movie", "a bad film indeed"], [1, 0]
    new_texts, new_labels = eda(texts, labels, table(), n_aug=4, alpha=0.5, seed=3)
    assert new_texts[:2] == texts and new_labels == [1, 0] + [1] * 4 + [0] * 4
    assert new_texts == eda(texts, labels, table(), n_aug=4, alpha=0.5, seed=3)[0]
    assert sorted(new_texts[4].split()) == sorted(texts[0].split())  # copy 2 of each text is a swap
