"""Metrics against hand-computed values: classification, entity-level F1 (seqeval's
default chunking), SQuAD v1.1 EM/F1 with the official normalization, perplexity."""

import math

import pytest
from hypothesis import given, strategies as st

from minillm.tasks import metrics


# ------------------------------------------------------------ classification
def test_accuracy_macro_f1_and_confusion_matrix_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    assert metrics.accuracy(gold, pred) == pytest.approx(4 / 6)
    labels, counts = metrics.confusion_matrix(gold, pred)
    assert labels == ["a", "b", "c"]
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    scores = metrics.per_class_scores(gold, pred)
    # a: P 2/2, R 2/3 -> F1 0.8;  b: P 1/2, R 1/2 -> 0.5;  c: P 1/2, R 1/1 -> 2/3
    assert scores["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert scores["b"]["f1"] == pytest.approx(0.5)
    assert scores["c"]["f1"] == pytest.approx(2 / 3)
    assert metrics.macro_f1(gold, pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_class_never_predicted_or_absent_scores_zero_not_nan():
    # class 2 is never predicted (P = 0/0 -> 0) and class 3 is asked for but absent.
    gold, pred = [0, 1, 2, 2], [0, 1, 0, 1]
    scores = metrics.per_class_scores(gold, pred, labels=[0, 1, 2, 3])
    assert scores[2] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert scores[3] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics.macro_f1(gold, pred, labels=[0, 1, 2, 3]) == pytest.approx((2 / 3 + 2 / 3) / 4)
    report = metrics.classification_scores(gold, pred)
    assert report["accuracy"] == 0.5 and report["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]


def test_classification_errors_are_clear():
    with pytest.raises(ValueError, match="gold has 2 items but pred has 1"):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        metrics.macro_f1([], [])
    with pytest.raises(ValueError, match=r"labels \[2\] are not in"):
        metrics.confusion_matrix([0, 2], [0, 1], labels=[0, 1])


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=30))
def test_confusion_matrix_margins_and_accuracy_agree(pairs):
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    labels, counts = metrics.confusion_matrix(gold, pred)
    assert counts.sum() == len(pairs)
    assert counts.trace() / len(pairs) == pytest.approx(metrics.accuracy(gold, pred))
    assert [int(counts[i].sum()) for i in range(len(labels))] == [gold.count(y) for y in labels]
    assert 0.0 <= metrics.macro_f1(gold, pred) <= 1.0


# ------------------------------------------------------------ entities
def test_bio_chunking_follows_seqeval_default_mode():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-ORG", "I-ORG"]
    # I-LOC after O starts an entity; B-LOC starts another; I-ORG after LOC starts an ORG.
    assert metrics.entities(tags) == [("PER", 0, 2), ("LOC", 3, 5), ("LOC", 5, 6), ("ORG", 6, 7), ("ORG", 7, 9)]
    assert metrics.entities(["I-MISC"]) == [("MISC", 0, 1)]
    assert metrics.entities(["O", "O"]) == []
    assert metrics.entities([]) == []
    # IOBES: E- closes, S- is a single-token entity.
    assert metrics.entities(["B-X", "E-X", "S-X", "I-X", "E-X", "O"]) == [("X", 0, 2), ("X", 2, 3), ("X", 3, 5)]


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "B-PER"]]
    # gold: PER(0,2) LOC(3) | ORG(0) PER(2); pred: PER(0,2) ORG(3) | ORG(0,2) PER(2)
    # hits: PER(0,2), PER(2): 2 of 4 predicted, 2 of 4 gold.
    scores = metrics.entity_scores(gold, pred)
    assert scores["micro"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4})
    assert scores["per_type"]["PER"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2})
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["macro"]["f1"] == pytest.approx(1 / 3)


def test_entity_scores_with_nothing_predicted_or_nothing_to_find():
    gold = [["B-PER", "O"], ["O", "I-LOC"]]
    none = [["O", "O"], ["O", "O"]]
    nothing_predicted = metrics.entity_scores(gold, none)
    assert nothing_predicted["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    nothing_to_find = metrics.entity_scores(none, gold)
    assert nothing_to_find["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    empty = metrics.entity_scores(none, none)
    assert empty["micro"]["f1"] == 0.0 and empty["per_type"] == {}
    with pytest.raises(ValueError, match="sequence 1: 2 gold tags but 1 predicted"):
        metrics.entity_scores(gold, [["O", "O"], ["O"]])


_TAGS = st.sampled_from(["O", "B-A", "I-A", "B-B", "I-B"])


@given(st.lists(st.lists(_TAGS, max_size=8), min_size=1, max_size=4))
def test_perfect_prediction_scores_one_and_entities_do_not_overlap(sequences):
    scores = metrics.entity_scores(sequences, sequences)
    n_entities = sum(len(metrics.entities(s)) for s in sequences)
    assert scores["micro"]["support"] == n_entities
    assert scores["micro"]["f1"] == (1.0 if n_entities else 0.0)
    for s in sequences:
        spans = metrics.entities(s)
        assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:]))
        assert sum(e - b for _, b, e in spans) == sum(t != "O" for t in s)


# ------------------------------------------------------------ SQuAD
def test_normalization_strips_case_punctuation_articles_and_spaces():
    assert metrics.normalize_answer("  The  Denver-Broncos!  ") == "denverbroncos"
    assert metrics.normalize_answer("a theory, an idea") == "theory idea"
    assert metrics.normalize_answer("Theatre") == "theatre"  # "the" only as a whole word
    assert metrics.normalize_answer("The") == ""


def test_exact_match_and_token_f1_by_hand():
    assert metrics.exact_match("the Broncos.", "Broncos") == 1.0
    assert metrics.exact_match("Denver Broncos", "Broncos") == 0.0
    # pred {denver, broncos}, gold {broncos}: P 1/2, R 1 -> F1 2/3
    assert metrics.token_f1("Denver Broncos", "the Broncos") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: pred x,x,x and gold x,y overlap in one x
    assert metrics.token_f1("x x x", "x y") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert metrics.token_f1("", "Broncos") == 0.0
    assert metrics.token_f1("the", "a") == 0.0  # both normalize to nothing: no overlap, as the official script
    assert metrics.exact_match("the", "a") == 1.0


def test_squad_scores_take_the_best_gold_answer_and_count_missing_predictions():
    examples = [
        {"id": "q1", "answers": {"text": ["Denver Broncos", "the Broncos"], "answer_start": [0, 0]}},
        {"id": "q2", "answers": {"text": ["Santa Clara, California"], "answer_start": [0]}},
        {"id": "q3", "answers": {"text": ["1990"], "answer_start": [0]}},
    ]
    predictions = {"q1": "Broncos", "q2": "Clara California"}
    # q1: EM 1 (vs "the Broncos"); q2: EM 0, F1 P 2/2 R 2/3 -> 0.8; q3 missing -> 0.
    scores = metrics.squad_scores(predictions, examples)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8) / 3)


def test_squad_ties_between_gold_answers_give_the_shared_score():
    # "Broncos team" is half right against either gold: F1 = 2 * (1/2 * 1) / (1/2 + 1) = 2/3 for both.
    example = {"id": "q", "answers": {"text": ["Broncos", "team"], "answer_start": [0, 8]}}
    assert metrics.squad_scores({"q": "Broncos team"}, [example]) == pytest.approx(
        {"exact_match": 0.0, "f1": 100 * 2 / 3})


# ------------------------------------------------------------ language modelling
def test_perplexity_and_bits():
    assert metrics.perplexity(math.log(50)) == pytest.approx(50)
    assert metrics.bits_per_token(math.log(8)) == pytest.approx(3.0)
