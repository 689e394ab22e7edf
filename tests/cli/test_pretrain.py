"""train.py end to end on the real Tiny Shakespeare: learning, exact resume, NaN guard, config files."""

import json
import math
import os

import pytest

from minillm import backend
from minillm.backend import np
from minillm.cli import pretrain as train
from minillm.models.gpt import GPT
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.tasks.tbptt import TruncatedBPTTTask
from minillm.tokenizers import load_tokenizer
from minillm.training.task import Task
from minillm.training.trainer import NonFiniteLoss, TrainConfig, Trainer

TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--log-interval", "1", "--warmup-iters", "2", "--sample-tokens", "20", "--no-progress"]


def run(tmp_path, name, *extra):
    return train.main(TINY + ["--out-dir", str(tmp_path / name), *extra])


def losses(history):
    return [(r["iter"], r["loss"]) for r in history if "loss" in r]


def small_bert(tmp_path, *flags):
    """(tokenizer, model, task) of a one-layer BERT run on WikiText-2, built as train.py builds them."""
    return train.run_bert(train.parse_args(["--model", "bert", "--data", "wikitext-2", "--vocab-size", "400",
                                            "--n-layer", "1", "--out-dir", str(tmp_path), "--no-progress", *flags]))


def test_training_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path):
    history = run(tmp_path, "a", "--max-iters", "30", "--eval-interval", "30", "--learning-rate", "1e-2")
    evals = [r for r in history if "val_loss" in r]
    assert evals[0]["iter"] == 0 and evals[-1]["iter"] == 30
    assert evals[0]["val_loss"] == pytest.approx(math.log(65), abs=0.3)  # uniform over 65 characters
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.6
    ckpt = tmp_path / "a" / "checkpoint"
    model, tokenizer = GPT.from_pretrained(ckpt), load_tokenizer(ckpt)
    assert tokenizer.vocab_size == model.config.vocab_size == 65
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if "val_loss" in r] == [0, 30]
    assert abs(records[-1]["full_val_loss"] - evals[-1]["val_loss"]) < 0.1  # all windows vs 2 sampled ones
    assert len((tmp_path / "a" / "samples.txt").read_text()) == 21  # "\n" + 20 characters


@pytest.mark.parametrize("threads", [1, 3])
def test_resume_repeats_an_uninterrupted_run_to_the_bit(tmp_path, threads):
    common = ["--max-iters", "12", "--eval-interval", "6", "--dropout", "0.1", "--grad-accum", "2",
              "--threads", str(threads)]
    whole = run(tmp_path, "whole", *common)
    run(tmp_path, "split", *common[:1], "6", *common[2:])  # stops after the iter-6 checkpoint
    resumed = train.main(["--resume", "--out-dir", str(tmp_path / "split"), "--max-iters", "12", "--no-progress"])
    assert losses(resumed) == losses(whole)[6:]  # the run's --threads is resumed with it
    assert [r["val_loss"] for r in resumed if "val_loss" in r] == [r["val_loss"] for r in whole if "val_loss" in r][-1:]


def test_resume_after_a_crash_between_the_renames_of_a_save(tmp_path):
    common = ["--max-iters", "4", "--eval-interval", "2", "--sample-tokens", "0"]
    whole = run(tmp_path, "whole", *common)
    run(tmp_path, "split", *common[:1], "2", *common[2:])
    os.rename(tmp_path / "split" / "checkpoint", tmp_path / "split" / "checkpoint.old")
    resumed = train.main(["--resume", "--out-dir", str(tmp_path / "split"), "--max-iters", "4", "--no-progress"])
    assert losses(resumed) == losses(whole)[2:]
    with pytest.raises(SystemExit) as info:
        train.main(["--resume", "--out-dir", str(tmp_path / "none")])
    assert info.value.code == 2


@pytest.mark.parametrize("flag", ["--max-iters", "--batch-size", "--block-size", "--learning-rate", "--eval-interval"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_counts_sizes_and_the_learning_rate_must_be_positive(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        train.parse_args([flag, value])
    assert info.value.code == 2 and f"argument {flag}: must be positive, got {value}" in capsys.readouterr().err


def test_threads_change_only_the_rounding(tmp_path):
    common = ["--max-iters", "6", "--eval-interval", "6", "--sample-tokens", "0"]
    one, three = run(tmp_path, "one", *common, "--threads", "1"), run(tmp_path, "three", *common, "--threads", "3")
    assert [loss for _, loss in losses(three)] == pytest.approx([loss for _, loss in losses(one)], rel=1e-5)
    norms = [[r["grad_norm"] for r in history if "grad_norm" in r] for history in (one, three)]
    assert norms[1] == pytest.approx(norms[0], rel=1e-5)
    assert norms[1] != norms[0]  # gradients summed over the slices in another order: they really ran


def test_config_file_and_unknown_keys(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"max_iters": 2, "eval_interval": 2}))
    history = run(tmp_path, "c", "--config", str(config))
    assert [r["iter"] for r in history if "val_loss" in r] == [0, 2]
    config.write_text(json.dumps({"max_itters": 2}))
    with pytest.raises(SystemExit):
        run(tmp_path, "d", "--config", str(config))


class ExplodingTask(Task):
    tokens_per_step = 1

    def __init__(self, model):
        self.model = model

    def train_step(self, it, micro, scale):
        return float("nan") if it == 3 else 1.0

    def evaluate(self):
        return {"val_loss": 1.0}


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    model = GPT(train.GPTConfig(vocab_size=5, n_positions=4, n_embd=4, n_layer=1, n_head=1))
    trainer = Trainer(model, ExplodingTask(model), TrainConfig(max_iters=10, eval_interval=2), str(tmp_path),
                      progress=False)
    with pytest.raises(NonFiniteLoss, match="at iter 3"):
        trainer.run()
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["iter"] == 2


def test_sample_command_reads_the_checkpoint(tmp_path):
    import sample

    run(tmp_path, "s", "--max-iters", "2", "--eval-interval", "2")
    texts = sample.main(["--out-dir", str(tmp_path / "s"), "--start", "ROMEO:", "--num-samples", "2",
                         "--max-new-tokens", "40", "--temperature", "0"])
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0].startswith("ROMEO:") and len(texts[0]) == 46


def test_lstm_trains_and_resumes_exactly_with_its_carried_state(tmp_path):
    lstm = ["--model", "lstm", "--n-layer", "1", "--n-embd", "8", "--hidden-size", "8", "--batch-size", "4",
            "--block-size", "8", "--log-interval", "1", "--eval-iters", "2", "--no-progress", "--sample-tokens", "10",
            "--eval-interval", "4"]
    whole = train.main(lstm + ["--out-dir", str(tmp_path / "whole"), "--max-iters", "8"])
    train.main(lstm + ["--out-dir", str(tmp_path / "split"), "--max-iters", "4"])
    resumed = train.main(["--resume", "--out-dir", str(tmp_path / "split"), "--max-iters", "8", "--no-progress"])
    assert losses(resumed) == losses(whole)[4:]
    evals = [r["val_loss"] for r in whole if "val_loss" in r]
    assert evals[-1] < evals[0]


def test_lstm_full_validation_reads_the_first_held_out_tokens_only():
    """As the GPT's and the n-gram's: the first max_tokens ids, cut into the B streams."""
    model = LSTMLM(LSTMConfig(vocab_size=7, n_embd=4, hidden_size=5, num_layers=1), seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    head, tail = rng.integers(0, 7, 300), rng.integers(0, 7, 500)
    first, longer = (TruncatedBPTTTask(model, head, val, batch_size=4, block_size=8).full_val_loss(max_tokens=200)
                     for val in (head, np.concatenate([head, tail])))
    assert first == longer and 0 < first < 2 * math.log(7)
    assert first != TruncatedBPTTTask(model, head, head, batch_size=4, block_size=8).full_val_loss(max_tokens=300)


def test_bert_pretraining_through_train_py(tmp_path):
    """MLM + NSP on WikiText-2 paragraphs with a small WordPiece vocabulary; resume is exact here too."""
    bert = ["--model", "bert", "--data", "wikitext-2", "--vocab-size", "400", "--n-layer", "1", "--n-embd", "16",
            "--block-size", "32", "--batch-size", "4", "--eval-iters", "2", "--eval-interval", "3", "--log-interval",
            "1", "--warmup-iters", "1", "--no-progress"]
    whole = train.main(bert + ["--out-dir", str(tmp_path / "whole"), "--max-iters", "6"])
    evals = [r for r in whole if "mlm_accuracy" in r]
    assert len(evals) == 3 and 0 <= evals[-1]["mlm_accuracy"] <= 1 and 0 <= evals[-1]["nsp_accuracy"] <= 1
    assert evals[-1]["val_loss"] == pytest.approx(evals[-1]["mlm_loss"] + evals[-1]["nsp_loss"])
    train.main(bert + ["--out-dir", str(tmp_path / "split"), "--max-iters", "3"])
    resumed = train.main(["--resume", "--out-dir", str(tmp_path / "split"), "--max-iters", "6", "--no-progress"])
    assert losses(resumed) == losses(whole)[3:]
    config = json.loads((tmp_path / "whole" / "checkpoint" / "config.json").read_text())
    assert config["model_type"] == "bert" and (tmp_path / "whole" / "checkpoint" / "vocab.txt").exists()


def test_xlnet_pretraining_through_train_py(tmp_path):
    """Permutation LM on WikiText-2 with a small WordPiece vocabulary; resume is exact."""
    xlnet = ["--model", "xlnet", "--data", "wikitext-2", "--vocab-size", "400", "--n-layer", "1", "--n-embd", "16",
             "--block-size", "16", "--batch-size", "4", "--eval-iters", "2", "--eval-interval", "3", "--log-interval",
             "1", "--warmup-iters", "1", "--no-progress"]
    whole = train.main(xlnet + ["--out-dir", str(tmp_path / "whole"), "--max-iters", "6"])
    evals = [r for r in whole if "plm_loss" in r]
    assert len(evals) == 3 and evals[-1]["val_loss"] == evals[-1]["plm_loss"]
    assert 0 < evals[-1]["plm_loss"] < 2 * math.log(400)
    assert evals[-1]["plm_perplexity"] == pytest.approx(math.exp(evals[-1]["plm_loss"]))
    train.main(xlnet + ["--out-dir", str(tmp_path / "split"), "--max-iters", "3"])
    resumed = train.main(["--resume", "--out-dir", str(tmp_path / "split"), "--max-iters", "6", "--no-progress"])
    assert losses(resumed) == losses(whole)[3:]
    config = json.loads((tmp_path / "whole" / "checkpoint" / "config.json").read_text())
    assert config["model_type"] == "minillm-xlnet"
    full = [r["full_val_loss"] for r in whole if "full_val_loss" in r]
    assert len(full) == 1 and 0 < full[0] < 2 * math.log(400)


@pytest.mark.parametrize("whole_words", [True, False])
def test_bert_whole_word_masking_flag(tmp_path, whole_words):
    """--whole-word-mask true chooses a word's pieces together; false chooses pieces on their own."""
    tokenizer, _, task = small_bert(tmp_path, "--n-embd", "16", "--block-size", "64", "--batch-size", "64",
                                    "--whole-word-mask", str(whole_words).lower())
    continuation = np.array([t.startswith("##") for t in tokenizer.itos])
    batch = {k: backend.to_host(v) for k, v in task.batch(0).items()}
    chosen = batch["labels"] != -100  # (B, T)
    original = np.where(chosen, batch["labels"], batch["input_ids"])
    special = np.isin(original, [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id])
    piece_after = continuation[original[:, 1:]] & ~special[:, :-1]  # a ## piece after a piece of its word
    split_words = (piece_after & (chosen[:, 1:] != chosen[:, :-1])).sum()
    assert (split_words == 0) == whole_words and chosen.sum() > 0


@pytest.mark.parametrize("local", [True, False])
def test_bert_local_start_flag(tmp_path, local):
    """--local-start true starts BERT's positions as sinusoids (models.bert.start_local); false at random."""
    _, model, _ = small_bert(tmp_path, "--n-embd", "64", "--n-head", "1", "--block-size", "16",
                             "--local-start", str(local).lower())
    positions = backend.to_host(model.bert.embeddings.position_embeddings.weight.data)  # (16, 64)
    sinusoid = np.allclose(positions[:, 0], 0.1 * np.sin(np.arange(16)), atol=1e-6)  # channel 0: w_0 = 1
    assert sinusoid == local and (np.count_nonzero(positions[:, 16:]) == 0) == local


def test_characters_without_a_newline_sample_and_the_final_score_is_optional(tmp_path):
    """WikiText-2's lines are its documents, so its characters hold no newline to start a sample from."""
    out = tmp_path / "wiki"
    history = train.main(TINY + ["--data", "wikitext-2", "--max-iters", "1", "--full-val-tokens", "0",
                                 "--out-dir", str(out)])
    assert len((out / "samples.txt").read_text(encoding="utf-8")) > 0
    assert not any("full_val_loss" in r for r in history)
    history = run(tmp_path, "short", "--max-iters", "1", "--full-val-tokens", "100")
    assert "full_val_loss" in history[-1]


def test_time_budget_says_why_it_stopped_and_resume_keeps_the_train_seconds(tmp_path, capsys):
    history = run(tmp_path, "b", "--max-iters", "50", "--max-seconds", "0.000001", "--eval-interval", "50")
    assert "the --max-seconds budget of 1e-06 s of training is spent" in capsys.readouterr().out
    spent = history[-1]["train_seconds"]
    state = json.loads((tmp_path / "b" / "checkpoint" / "trainer_state.json").read_text())
    assert state["train_seconds"] > 0
    resumed = train.main(["--resume", "--out-dir", str(tmp_path / "b"), "--max-iters", "3", "--max-seconds", "0",
                          "--no-progress"])
    assert resumed[-1]["train_seconds"] > spent
