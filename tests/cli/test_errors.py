"""A user's mistake ends every command with one line on stderr naming the file, a non-zero exit, no traceback.

Each command runs as a subprocess, as a user runs it, on tiny malformed
inputs written in tmp_path (and from tmp_path, so nothing lands in the
repository's data/).
"""

import json
import os
import subprocess
import sys

import pytest

from minillm.cli.errors import message, run_main
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.tokenizers.char import CharTokenizer
from minillm.tokenizers.wordpiece import WordPieceTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SST2_HEADER = "sentence\tlabel\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny checkpoints (GPT, BERT, LSTM) and data directories, good and malformed: {name: path}."""
    root = tmp_path_factory.mktemp("errors")
    chars = CharTokenizer.train("abc \n")
    words = WordPieceTokenizer.train(["a gripping film", "a dull film"], 40)
    paths = {}
    for name, model, tokenizer in [
            ("gpt", GPT(GPTConfig(vocab_size=chars.vocab_size, n_positions=16, n_embd=8, n_layer=1, n_head=2)),
             chars),
            ("bert", BertForPreTraining(BertConfig(vocab_size=words.vocab_size, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=16,
                                                   max_position_embeddings=32)), words),
            ("lstm", LSTMLM(LSTMConfig(vocab_size=chars.vocab_size, n_embd=8, hidden_size=8, num_layers=1)),
             chars)]:
        paths[name] = root / name
        model.save_pretrained(paths[name], extra_files=tokenizer.save)
    paths["truncated"] = root / "truncated"
    BertForPreTraining(BertConfig(vocab_size=words.vocab_size, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=16,
                                  max_position_embeddings=32)).save_pretrained(paths["truncated"],
                                                                               extra_files=words.save)
    weights = paths["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    paths["run"] = root / "run"  # a train.py run whose checkpoint's weights are cut short
    (paths["run"] / "checkpoint").mkdir(parents=True)
    state = {"run_config": {}, "iter": 0, "best": None, "evals_since_best": 0, "optimizer_step": 0, "train_config": {}}
    write(paths["run"] / "checkpoint" / "trainer_state.json", json.dumps(state))
    (paths["run"] / "checkpoint" / "model.safetensors").write_bytes(weights.read_bytes())
    paths["empty_vocab"] = write(root / "empty_vocab" / "vocab.txt", "").parent
    paths["no_model_type"] = write(root / "no_model_type" / "config.json", json.dumps({"n_embd": 8})).parent
    chars.save(paths["no_model_type"])
    paths["sst2"] = write(root / "sst2_bad" / "sst2" / "train.tsv",
                          SST2_HEADER + "a film\t1\nno label here\n").parents[1]
    write(paths["sst2"] / "sst2" / "dev.tsv", SST2_HEADER + "a film\t1\n")
    paths["conll"] = write(root / "conll_bad" / "conll2003" / "eng.train", "EU NNP B-NP B-ORG\nrejects\n").parents[1]
    paths["squad"] = write(root / "squad_bad" / "squad1.1" / "dev-v1.1.json",
                           '{"version": "1.1", "data": [{"ti').parents[1]
    paths["good_sst2"] = write(root / "sst2_good" / "sst2" / "train.tsv", SST2_HEADER + "a film\t1\n").parents[1]
    write(paths["good_sst2"] / "sst2" / "dev.tsv", SST2_HEADER + "a film\t1\n")
    return paths


# (id, command line with {name} for a path of `files`, the name whose path the error must mention)
CASES = [
    ("sst2-bad-line", "finetune.py --task sentiment --model lstm --data-dir {sst2}", "train.tsv:3"),
    ("conll-one-column", "finetune.py --task ner --init {bert} --data-dir {conll}", "eng.train:2"),
    ("squad-truncated", "finetune.py --task qa --init {bert} --data-dir {squad}", "dev-v1.1.json"),
    ("qa-from-gpt", "finetune.py --task qa --init {gpt}", "{gpt}"),
    ("init-truncated-weights", "finetune.py --init {truncated} --data-dir {good_sst2}", "model.safetensors"),
    ("resume-truncated-weights", "train.py --resume --out-dir {run}", "model.safetensors"),
    ("init-empty-vocab", "finetune.py --init {empty_vocab}", "{empty_vocab}"),
    ("tokenizer-empty-vocab", "-m minillm.cli.tokenizer encode --tokenizer {empty_vocab} text", "vocab.txt"),
    ("init-no-model-type", "finetune.py --init {no_model_type} --data-dir {good_sst2}", "config.json"),
    ("sample-no-model-type", "sample.py --out-dir {no_model_type}", "config.json"),
    ("train-missing-data-dir", "train.py --data-dir {root}/nowhere", "nowhere"),
    ("finetune-missing-data-dir", "finetune.py --model lstm --data-dir {root}/nowhere", "nowhere"),
    ("bow-missing-data-dir", "-m minillm.cli.bow --task sentiment --data-dir {root}/nowhere", "nowhere"),
    ("tokenizer-missing-data-dir", "-m minillm.cli.tokenizer train --data imdb --kind char --out {root}/t "
                                   "--data-dir {root}/nowhere", "nowhere"),
    ("sample-no-run", "sample.py --out-dir {root}/no-run-yet", "no-run-yet"),
    ("sample-lstm", "sample.py --out-dir {lstm}", "{lstm}"),
    ("sample-bert", "sample.py --out-dir {bert}", "{bert}"),
    ("ngram-arpa-characters", "train.py --model ngram --save-arpa --data-dir {root}/nowhere", "--save-arpa"),
    ("ngram-bench-missing-kenlm", "-m minillm.tools.ngram_bench --kenlm {root}/nowhere", "nowhere"),
    ("bow-news-chnsenticorp", "-m minillm.cli.bow --task news --dataset chnsenticorp", "chnsenticorp"),
    ("predict-missing-file", "finetune.py --model lstm --predict-file {root}/missing.txt --out-dir {gpt}",
     "missing.txt"),
]
if "MINILLM_DEVICE" not in os.environ:
    try:
        import cupy  # noqa: F401
    except ImportError:
        CASES += [("gpu-without-cupy", "train.py --device gpu", "CuPy"),
                  ("bench-gpu-without-cupy", "-m minillm.tools.lstm_bench --device gpu", "CuPy")]


@pytest.mark.parametrize("case, command, named", CASES, ids=[case for case, _, _ in CASES])
def test_a_user_error_is_one_line_without_a_traceback(files, tmp_path, case, command, named):
    paths = {**{k: str(v) for k, v in files.items()}, "root": str(tmp_path)}
    argv = [a.format(**paths) for a in command.split()]
    script = argv[0] if argv[0] == "-m" else os.path.join(ROOT, argv[0])
    env = {k: v for k, v in os.environ.items() if k not in ("MINILLM_DEBUG", "MINILLM_DEVICE")}
    env["PYTHONPATH"] = ROOT
    done = subprocess.run([sys.executable, script, *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and named.format(**paths) in lines[0], done.stderr
    assert not (tmp_path / "data").exists()  # nothing half-downloaded left behind


def test_debug_shows_the_traceback(monkeypatch):
    def main(argv):
        raise FileNotFoundError("data/x.txt: not found")

    with pytest.raises(SystemExit, match="^error: data/x.txt: not found$"):
        run_main(main)
    monkeypatch.setenv("MINILLM_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        run_main(main)
    assert message(KeyError("unknown dataset 'x'")) == "unknown dataset 'x'"
