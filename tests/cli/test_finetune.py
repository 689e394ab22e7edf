"""finetune.py end to end on a slice of SST-2, from a tiny GPT pretrained by train.py."""

import json

import pytest

from minillm.cli import finetune, pretrain
from minillm.models.heads import GPTForSequenceClassification
from minillm.tasks.batching import predict_probabilities
from minillm.tasks.classification import encode_all
from minillm.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "gpt"
    pretrain.main(["--tokenizer", "bpe", "--vocab-size", "300", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                   "--block-size", "32", "--batch-size", "4", "--max-iters", "2", "--eval-iters", "1",
                   "--sample-tokens", "0", "--no-progress", "--out-dir", str(out)])
    return out


def test_finetune_reports_and_predicts(pretrained, tmp_path, capsys):
    out = tmp_path / "ft"
    common = ["--task", "sentiment", "--max-train-examples", "96", "--batch-size", "16", "--epochs", "1",
              "--no-progress", "--out-dir", str(out)]
    results = finetune.main(common + ["--init", str(pretrained)])
    assert "initialised fresh: score.weight" in capsys.readouterr().out
    assert set(results) == {"dev"} and 0.0 <= results["dev"]["accuracy"] <= 1.0
    report = json.loads((out / "report-dev.json").read_text())
    matrix = report["confusion_matrix"]["rows_gold_cols_pred"]
    assert sum(map(sum, matrix)) == 872 and sum(matrix[1]) == 444  # SST-2 dev, 444 positive
    assert report["scores"]["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 872)
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["architectures"] == ["GPT2ForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    model = GPTForSequenceClassification.from_pretrained(out / "best")
    assert model.label_names == ["negative", "positive"]
    capsys.readouterr()
    finetune.main(common + ["--predict", "a gripping , beautiful film"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["label"] in ("negative", "positive") and sum(line["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    texts = tmp_path / "texts.txt"
    texts.write_text("un film café\n\n   \n酒店很好\n", encoding="utf-8")  # blank lines are skipped
    finetune.main(common + ["--predict-file", str(texts)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(x)["text"] for x in lines] == ["un film café", "酒店很好"] and "酒店很好" in lines[1]


def test_peft_lora_saves_an_adapter_and_a_merged_model(pretrained, tmp_path, capsys):
    common = ["--task", "sentiment", "--init", str(pretrained), "--max-train-examples", "32", "--max-eval-examples",
              "32", "--batch-size", "16", "--epochs", "1", "--no-progress", "--peft", "lora"]
    finetune.main(common + ["--merge", "--out-dir", str(tmp_path / "lora")])
    assert "parameters train (" in capsys.readouterr().out
    assert json.loads((tmp_path / "lora" / "adapter" / "adapter_config.json").read_text())["target_modules"] == [
        "c_attn"]
    merged = GPTForSequenceClassification.from_pretrained(tmp_path / "lora" / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    capsys.readouterr()
    text = "a gripping , beautiful film"
    finetune.main(common + ["--out-dir", str(tmp_path / "lora"), "--predict", text])  # best/ holds the adapters too
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    encoded = encode_all(load_tokenizer(tmp_path / "lora" / "merged"), [text], 128)
    probs = predict_probabilities(merged, encoded, 1, merged.pad_token_id)[0]
    assert [line["probabilities"][n] for n in merged.label_names] == pytest.approx(probs.tolist(), abs=1e-4)
    with pytest.raises(ValueError, match=r"unknown LoRA target modules \['query'\]; .* c_attn, c_fc, c_proj"):
        finetune.main(common + ["--lora-targets", "query", "--out-dir", str(tmp_path / "bad")])


def test_peft_methods_predict_and_several_adapters_predict_over_one_base(pretrained, tmp_path, capsys):
    common = ["--task", "sentiment", "--init", str(pretrained), "--max-train-examples", "32", "--max-eval-examples",
              "32", "--batch-size", "16", "--epochs", "1", "--no-progress"]
    runs = {"adapter": ["--peft", "adapter", "--adapter-size", "4"],
            "prefix": ["--peft", "prefix", "--num-virtual-tokens", "3"],
            "prompt": ["--peft", "prompt", "--num-virtual-tokens", "4", "--learning-rate", "1e-2"],
            "prompt2": ["--peft", "prompt", "--num-virtual-tokens", "2", "--seed", "7"]}
    text, own = "a gripping , beautiful film", {}
    for name, flags in runs.items():
        finetune.main(common + flags + ["--out-dir", str(tmp_path / name)])
        capsys.readouterr()
        finetune.main(common + flags + ["--out-dir", str(tmp_path / name), "--predict", text])  # best/ + adapter/
        own[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["probabilities"]
    assert json.loads((tmp_path / "prompt" / "adapter" / "adapter_config.json").read_text())["peft_type"] == \
        "PROMPT_TUNING"
    dirs = [str(tmp_path / name / "adapter") for name in ("prompt", "prompt2")]
    finetune.main(["--task", "sentiment", "--predict", text, "--adapter-dir", *dirs])
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()[-2:]]
    assert [x["adapter"] for x in lines] == dirs
    for line, name in zip(lines, ("prompt", "prompt2")):
        assert line["probabilities"] == pytest.approx(own[name], abs=1e-4)
    with pytest.raises(ValueError, match="adapters over one base must be of one method"):
        finetune.main(["--task", "sentiment", "--predict", text, "--adapter-dir", dirs[0],
                       str(tmp_path / "prefix" / "adapter")])


def test_scratch_baseline_and_missing_checkpoint(pretrained, tmp_path, capsys):
    finetune.main(["--task", "intent", "--init", "none", "--arch-from", str(pretrained), "--max-train-examples", "32",
                   "--batch-size", "16", "--epochs", "1", "--no-progress", "--out-dir", str(tmp_path / "s")])
    assert "random initialisation" in capsys.readouterr().out
    assert (tmp_path / "s" / "report-test.md").exists()
    with pytest.raises(SystemExit, match="no pretrained checkpoint"):
        finetune.main(["--init", str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "x")])


def test_finetune_from_a_bert_pretrained_by_train_py(tmp_path, capsys):
    pre = tmp_path / "bert"
    pretrain.main(["--model", "bert", "--data", "wikitext-2", "--vocab-size", "400", "--n-layer", "1", "--n-embd",
                   "16", "--block-size", "32", "--batch-size", "4", "--max-iters", "2", "--eval-iters", "1",
                   "--no-progress", "--out-dir", str(pre)])
    out = tmp_path / "ft"
    results = finetune.main(["--task", "intent", "--init", str(pre), "--max-train-examples", "64", "--batch-size",
                             "16", "--epochs", "1", "--no-progress", "--out-dir", str(out)])
    printed = capsys.readouterr().out
    assert "initialised fresh: classifier.bias, classifier.weight" in printed
    assert "checkpoint weights not used: cls." in printed
    assert set(results) == {"dev", "test"} and results["test"]["accuracy"] >= 0
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and len(config["id2label"]) == 7
    assert (out / "best" / "vocab.txt").exists()
