"""SQuAD v1.1: the split by article, the official train file, answers checked against the context."""

import json

import pytest

from minillm.data.datasets import DataFormatError
from minillm.data.squad import squad, squad_uses_official_train


def _squad_file(answer_start):
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{
        "context": "The Broncos won.", "qas": [
            {"id": "a", "question": "Who won?", "answers": [{"text": "Broncos", "answer_start": 4}]},
            {"id": "b", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": answer_start}]}]}]}]}


# ------------------------------------------------------------ SQuAD v1.1
def test_squad_split_by_article_keeps_every_question_once():
    assert not squad_uses_official_train()
    train, dev = squad("train"), squad("dev")
    assert (len(train), len(dev)) == (8338, 2232)  # fixed seed: the split is the same everywhere
    assert len({q["id"] for q in train + dev}) == 10_570
    assert not {q["context"] for q in train} & {q["context"] for q in dev}
    assert not {q["title"] for q in train} & {q["title"] for q in dev}
    assert len({q["title"] for q in train}) == 38 and len({q["title"] for q in dev}) == 10
    assert sum(len(q["answers"]["text"]) for q in train + dev) == 34_726
    for q in dev[:200]:
        for text, start in zip(q["answers"]["text"], q["answers"]["answer_start"]):
            assert q["context"][start:start + len(text)] == text
    with pytest.raises(ValueError, match="no public test set"):
        squad("test")


def test_squad_official_train_is_used_when_present_and_answers_are_checked(tmp_path, write_file):
    write_file(tmp_path, "squad1.1/dev-v1.1.json", json.dumps(_squad_file(4)))
    write_file(tmp_path, "squad1.1/train-v1.1.json", json.dumps(_squad_file(4)))
    root = str(tmp_path)
    assert squad_uses_official_train(root)
    assert squad("dev", root)[1] == {"id": "b", "title": "T", "question": "Who?",
                                              "context": "The Broncos won.",
                                              "answers": {"text": ["Broncos"], "answer_start": [4]}}
    write_file(tmp_path, "squad1.1/train-v1.1.json", json.dumps(_squad_file(5)))
    with pytest.raises(DataFormatError, match=r"train-v1.1.json: data\[0\].paragraphs\[0\].qas\[1\].answers\[0\]: "
                                              r"context\[5:12\] is 'roncos ', not the answer 'Broncos'"):
        squad("train", root)
    write_file(tmp_path, "squad1.1/train-v1.1.json", '{"data": [\n{"title": }]}')
    with pytest.raises(DataFormatError, match="train-v1.1.json:2: invalid JSON"):
        squad("train", root)
