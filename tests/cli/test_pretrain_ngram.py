"""`python train.py --model ngram`: the n-gram baseline through train.py, scored on the neural models' held-out tokens."""

from minillm.backend import np
from minillm.cli import pretrain as train, pretrain_ngram
from minillm.cli.pretrain_ngram import leading_sentences


def test_ngram_model_through_train_py(tmp_path, capsys):
    records = train.main(["--model", "ngram", "--order", "3", "--out-dir", str(tmp_path / "ng"), "--no-progress",
                          "--sample-tokens", "20"])
    result = records[0]
    assert result["val_tokens"] == 111_540  # every validation character (a line's "\n" is its </s>)
    assert 1.5 < result["full_val_loss"] < 2.5 and result["val_oov"] == 0
    assert "3-gram modified-kneser-ney" in capsys.readouterr().out


def test_ngram_on_subwords_scores_the_first_held_out_tokens_as_the_neural_models(tmp_path, monkeypatch):
    """Documents of the cached stream, one </s> per separator; validation cut at FULL_VAL_TOKENS."""
    monkeypatch.setattr(pretrain_ngram, "FULL_VAL_TOKENS", 20_000)
    flags = ["--model", "ngram", "--order", "2", "--data", "wikitext-2", "--tokenizer", "bpe", "--vocab-size", "300",
             "--no-progress", "--sample-tokens", "0"]
    result = train.main(flags + ["--out-dir", str(tmp_path / "ng")])[0]
    _, train_ids, val_ids = pretrain_ngram.lm_streams("bpe", "wikitext-2", 300, None, False)
    separators = np.flatnonzero(val_ids == val_ids[-1])  # the stream ends with a document's separator
    kept = separators[separators < 20_000][-1] + 1  # the whole documents within the first 20,000 tokens
    assert result["val_tokens"] == kept and 19_000 < kept <= 20_000
    assert result["train_tokens"] == len(train_ids)  # every token of the stream, separators as </s>


def test_leading_sentences_keep_whole_sentences_within_the_token_budget():
    sentences = [["a", "b"], ["c"], ["d", "e", "f"]]  # 3 + 2 + 4 tokens with their </s>
    assert leading_sentences(sentences, 5) == sentences[:2]
    assert leading_sentences(sentences, 8) == sentences[:2]
    assert leading_sentences(sentences, 9) == sentences
    assert leading_sentences(sentences, 2) == []
