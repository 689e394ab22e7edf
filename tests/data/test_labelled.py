"""The classification sets: SST-2, AG News, SNIPS; malformed rows named with file and line."""

import collections

import pytest

from minillm.data.datasets import FINETUNE_SPLITS, DataFormatError
from minillm.data.labelled import ag_news, ag_news_classes, ag_news_uses_official_train, snips, sst2


# ------------------------------------------------------------ SST-2
def test_sst2_counts_and_no_labelled_test():
    dev = sst2("dev")
    assert len(dev) == 872 and sum(y for _, y in dev) == 444
    assert dev[0] == ("it 's a charming and often affecting journey .", 1)
    train = sst2("train")
    assert len(train) == 67_349 and sum(y for _, y in train) == 37_569
    with pytest.raises(ValueError, match="evaluate on dev"):
        sst2("test")


def test_sst2_malformed_rows_name_file_and_line(tmp_path, write_file):
    write_file(tmp_path, "sst2/dev.tsv", "sentence\tlabel\ngood .\t1\nbad .\tnegative\n")
    with pytest.raises(DataFormatError, match=r"sst2/dev.tsv:3: expected 'sentence<TAB>0\|1'"):
        sst2("dev", directory=str(tmp_path))
    write_file(tmp_path, "sst2/dev.tsv", "text\tlabel\n")
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


def test_ag_news_uses_the_official_train_file_when_present(tmp_path, write_file):
    write_file(tmp_path, "ag_news/classes.txt", "World\nSports\n")
    write_file(tmp_path, "ag_news/test.csv", '"1","T","D"\n"2","T2","D2"\n')
    rows = "".join(f'"{1 + i % 2}","title {i}","say ""hi"" {i}"\n' for i in range(40))
    write_file(tmp_path, "ag_news/train.csv", rows)
    root = str(tmp_path)
    assert ag_news_uses_official_train(root)
    assert ag_news("test", root) == [("T\nD", 0), ("T2\nD2", 1)]
    train, dev = ag_news("train", root), ag_news("dev", root)
    assert len(train) == 38 and collections.Counter(y for _, y in dev) == {0: 1, 1: 1}
    assert train[0] == ('title 0\nsay "hi" 0', 0)


def test_ag_news_malformed_rows_name_file_and_line(tmp_path, write_file):
    write_file(tmp_path, "ag_news/classes.txt", "World\nSports\n")
    write_file(tmp_path, "ag_news/test.csv", '"1","T","D"\n"5","T","D"\n')
    with pytest.raises(DataFormatError, match=r"test.csv:2: expected '\"class 1-2\""):
        ag_news("test", str(tmp_path))
    write_file(tmp_path, "ag_news/test.csv", '"1","T","D"\n"2","T"\n')
    with pytest.raises(DataFormatError, match="test.csv:2:"):
        ag_news("test", str(tmp_path))


# ------------------------------------------------------------ SNIPS
def test_snips_counts_intents_and_alignment():
    dev, test = snips("dev"), snips("test")
    assert len(snips("train")) == 13_084 and len(dev) == len(test) == 700
    intents = collections.Counter(intent for _, _, intent in dev)
    assert intents == {name: 100 for name in ("AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic",
                                              "RateBook", "SearchCreativeWork", "SearchScreeningEvent")}
    assert all(len(tokens) == len(tags) for tokens, tags, _ in test)


def test_snips_tag_count_mismatch_names_file_and_line(tmp_path, write_file):
    write_file(tmp_path, "snips/valid/seq.in", "play a song\nbook it\n")
    write_file(tmp_path, "snips/valid/seq.out", "O O O \nO \n")
    write_file(tmp_path, "snips/valid/label", "PlayMusic\nBookRestaurant\n")
    with pytest.raises(DataFormatError, match=r"valid/seq.out:2: 1 tags for 2 tokens"):
        snips("dev", str(tmp_path))
    write_file(tmp_path, "snips/valid/label", "PlayMusic\n")
    with pytest.raises(DataFormatError, match="must be line-aligned"):
        snips("dev", str(tmp_path))
