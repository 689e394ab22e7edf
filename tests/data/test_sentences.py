"""Reviews cut into sentences and encoded as documents."""

import os

import pytest

from minillm.data.datasets import dataset_path
from minillm.data.sentences import split_sentences


def test_split_sentences_rule():
    text = 'Great film. I laughed! Did you?<br /><br />He said "no." Then left...  End'
    assert split_sentences(text) == ["Great film.", "I laughed!", "Did you?", 'He said "no."', "Then left...", "End"]
    assert split_sentences("<br /> <br />") == []


def test_real_imdb_reviews_split_into_sentences():
    try:
        folder = dataset_path("imdb", "imdb/aclImdb/train/pos")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    with open(os.path.join(folder, "0_9.txt"), encoding="utf-8") as f:
        sentences = split_sentences(f.read())
    assert sentences[0] == "Bromwell High is a cartoon comedy."
    assert sentences[-1] == "What a pity that it isn't!" and len(sentences) == 11
