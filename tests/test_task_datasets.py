"""Fine-tuning datasets: the real counts of ../shared/data/README.md, the documented
splits, IOB1 -> BIO2, and malformed files failing with the file and line."""

import collections
import json

import pytest

from minillm.data.conll2003 import conll2003, iob1_to_bio2
from minillm.data.datasets import DATASETS, FINETUNE_SPLITS, DataFormatError, stratified_split
from minillm.data.labelled import ag_news, ag_news_classes, ag_news_uses_official_train, snips, sst2
from minillm.data.squad import squad, squad_uses_official_train


def write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------ SST-2
def test_sst2_counts_and_no_labelled_test():
    dev = sst2("dev")
    assert len(dev) == 872 and sum(y for _, y in dev) == 444
    assert dev[0] == ("it 's a charming and often affecting journey .", 1)
    train = sst2("train")
    assert len(train) == 67_349 and sum(y for _, y in train) == 37_569
    with pytest.raises(ValueError, match="evaluate on dev"):
        sst2("test")


def test_sst2_malformed_rows_name_file_and_line(tmp_path):
    write(tmp_path, "sst2/dev.tsv", "sentence\tlabel\ngood .\t1\nbad .\tnegative\n")
    with pytest.raises(DataFormatError, match=r"sst2/dev.tsv:3: expected 'sentence<TAB>0\|1'"):
        sst2("dev", directory=str(tmp_path))
    write(tmp_path, "sst2/dev.tsv", "text\tlabel\n")
    with pytest.raises(DataFormatError, match="dev.tsv:1: expected the header"):
        sst2("dev", directory=str(tmp_path))


# ------------------------------------------------------------ AG News
def test_ag_news_stratified_split_of_test_csv():
    assert ag_news_classes() == ["World", "Sports", "Business", "Sci/Tech"]
    assert not ag_news_uses_official_train()
    parts = {s: ag_news(s) for s in FINETUNE_SPLITS}
    for split, per_class in (("train", 1330), ("dev", 190), ("test", 380)):
        assert collections.Counter(y for _, y in parts[split]) == {c: per_class for c in range(4)}
    texts = [{t for t, _ in parts[s]} for s in FINETUNE_SPLITS]
    assert sum(len(t) for t in texts) == len(set.union(*texts))  # disjoint
    assert parts == {s: ag_news(s) for s in FINETUNE_SPLITS}  # fixed seed
    everything = [t for s in FINETUNE_SPLITS for t, _ in parts[s]]
    assert any("\nteam of rocketeers" in t for t in everything)  # "second\team": backslash is a line break
    assert any("$1 billion" in t for t in everything) and not any("\\" in t for t in everything)


def test_ag_news_uses_the_official_train_file_when_present(tmp_path):
    write(tmp_path, "ag_news/classes.txt", "World\nSports\n")
    write(tmp_path, "ag_news/test.csv", '"1","T","D"\n"2","T2","D2"\n')
    rows = "".join(f'"{1 + i % 2}","title {i}","say ""hi"" {i}"\n' for i in range(40))
    write(tmp_path, "ag_news/train.csv", rows)
    root = str(tmp_path)
    assert ag_news_uses_official_train(root)
    assert ag_news("test", root) == [("T\nD", 0), ("T2\nD2", 1)]
    train, dev = ag_news("train", root), ag_news("dev", root)
    assert len(train) == 38 and collections.Counter(y for _, y in dev) == {0: 1, 1: 1}
    assert train[0] == ('title 0\nsay "hi" 0', 0)


def test_ag_news_malformed_rows_name_file_and_line(tmp_path):
    write(tmp_path, "ag_news/classes.txt", "World\nSports\n")
    write(tmp_path, "ag_news/test.csv", '"1","T","D"\n"5","T","D"\n')
    with pytest.raises(DataFormatError, match=r"test.csv:2: expected '\"class 1-2\""):
        ag_news("test", str(tmp_path))
    write(tmp_path, "ag_news/test.csv", '"1","T","D"\n"2","T"\n')
    with pytest.raises(DataFormatError, match="test.csv:2:"):
        ag_news("test", str(tmp_path))


def test_stratified_split_proportions_and_errors():
    labels = ["a"] * 10 + ["b"] * 20
    train, dev = stratified_split(labels, (0.7, 0.3), seed=3)
    assert sorted(train + dev) == list(range(30))
    assert collections.Counter(labels[i] for i in dev) == {"a": 3, "b": 6}
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(labels, (0.5, 0.4))


# ------------------------------------------------------------ SNIPS
def test_snips_counts_intents_and_alignment():
    dev, test = snips("dev"), snips("test")
    assert len(snips("train")) == 13_084 and len(dev) == len(test) == 700
    intents = collections.Counter(intent for _, _, intent in dev)
    assert intents == {name: 100 for name in ("AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic",
                                              "RateBook", "SearchCreativeWork", "SearchScreeningEvent")}
    assert all(len(tokens) == len(tags) for tokens, tags, _ in test)


def test_snips_tag_count_mismatch_names_file_and_line(tmp_path):
    write(tmp_path, "snips/valid/seq.in", "play a song\nbook it\n")
    write(tmp_path, "snips/valid/seq.out", "O O O \nO \n")
    write(tmp_path, "snips/valid/label", "PlayMusic\nBookRestaurant\n")
    with pytest.raises(DataFormatError, match=r"valid/seq.out:2: 1 tags for 2 tokens"):
        snips("dev", str(tmp_path))
    write(tmp_path, "snips/valid/label", "PlayMusic\n")
    with pytest.raises(DataFormatError, match="must be line-aligned"):
        snips("dev", str(tmp_path))


# ------------------------------------------------------------ CoNLL-2003
def test_iob1_to_bio2_by_hand():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG", "I-MISC", "B-MISC", "O", "I-PER"]
    bio2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "B-MISC", "B-MISC", "O", "B-PER"]
    assert iob1_to_bio2(iob1) == bio2
    assert iob1_to_bio2(bio2) == bio2  # BIO2 input is left as it is
    assert iob1_to_bio2([]) == []


def test_conll_dev_entity_counts_after_conversion_match_the_paper():
    dev = conll2003("dev")
    assert len(dev) == 3250 and sum(len(words) for words, _ in dev) == 51_362
    starts = collections.Counter(tag[2:] for _, tags in dev for tag in tags if tag.startswith("B-"))
    assert starts == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}
    assert all(words[0] != "-DOCSTART-" for words, _ in dev)
    assert dev[0] == (["CRICKET", "-", "LEICESTERSHIRE", "TAKE", "OVER", "AT", "TOP", "AFTER", "INNINGS",
                       "VICTORY", "."], ["O", "O", "B-ORG", "O", "O", "O", "O", "O", "O", "O", "O"])


def test_conll_malformed_line_names_file_and_line(tmp_path):
    write(tmp_path, "conll2003/eng.testa", "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP\n")
    with pytest.raises(DataFormatError, match="eng.testa:4: expected 4 space-separated columns"):
        conll2003("dev", str(tmp_path))
    write(tmp_path, "conll2003/eng.testa", "EU NNP I-NP I-ORGANISATION\n")
    with pytest.raises(DataFormatError, match="eng.testa:1: NER tag 'I-ORGANISATION'"):
        conll2003("dev", str(tmp_path))


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


def _squad_file(answer_start):
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{
        "context": "The Broncos won.", "qas": [
            {"id": "a", "question": "Who won?", "answers": [{"text": "Broncos", "answer_start": 4}]},
            {"id": "b", "question": "Who?", "answers": [{"text": "Broncos", "answer_start": answer_start}]}]}]}]}


def test_squad_official_train_is_used_when_present_and_answers_are_checked(tmp_path):
    write(tmp_path, "squad1.1/dev-v1.1.json", json.dumps(_squad_file(4)))
    write(tmp_path, "squad1.1/train-v1.1.json", json.dumps(_squad_file(4)))
    root = str(tmp_path)
    assert squad_uses_official_train(root)
    assert squad("dev", root)[1] == {"id": "b", "title": "T", "question": "Who?",
                                              "context": "The Broncos won.",
                                              "answers": {"text": ["Broncos"], "answer_start": [4]}}
    write(tmp_path, "squad1.1/train-v1.1.json", json.dumps(_squad_file(5)))
    with pytest.raises(DataFormatError, match=r"train-v1.1.json: data\[0\].paragraphs\[0\].qas\[1\].answers\[0\]: "
                                              r"context\[5:12\] is 'roncos ', not the answer 'Broncos'"):
        squad("train", root)
    write(tmp_path, "squad1.1/train-v1.1.json", '{"data": [\n{"title": }]}')
    with pytest.raises(DataFormatError, match="train-v1.1.json:2: invalid JSON"):
        squad("train", root)


def test_registry_lists_every_task_dataset():
    for name in ("sst2", "ag_news", "snips", "conll2003", "squad1.1"):
        entry = DATASETS[name]
        assert entry.name == name and entry.files and entry.about
