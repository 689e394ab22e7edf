"""NER on CoNLL-2003: first-sub-token targets, tag decoding, the task's loss, finetune.py end to end."""

import functools
import json

import pytest

from minillm.backend import np, to_host, xp
from minillm.cli import finetune
from minillm.data.conll2003 import conll2003
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.gpt import GPT, GPTConfig
from minillm.models.heads import BertForTokenClassification, GPTForTokenClassification
from minillm.tasks import metrics, ner
from minillm.tasks.ner import first_subtoken_labels
from minillm.tokenizers import BPETokenizer, WordPieceTokenizer
from minillm.training.optim import AdamW

HAND_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",  # 0-4
              "brus", "##sels", "1996", "-", "08", "peter", "black", "##burn"]  # 5-12


@functools.lru_cache(maxsize=None)
def conll_text(n=300):
    return [" ".join(words) for words, _ in conll2003("train")[:n]]


@functools.lru_cache(maxsize=None)
def small_wordpiece():
    return WordPieceTokenizer.train(conll_text(), 300, lowercase=False)


@functools.lru_cache(maxsize=None)
def small_bpe():
    return BPETokenizer.train(conll_text(), 300)


def tag_ids(tags):
    return [ner.TAGS.index(t) for t in tags]


def test_first_subtoken_labels_on_real_sentences_by_hand():
    tok = WordPieceTokenizer(HAND_VOCAB)
    train = conll2003("train")
    words, tags = train[2]
    assert (words, tags) == (["BRUSSELS", "1996-08-22"], ["B-LOC", "O"])
    ids, word_ids = tok.encode_words(words)
    assert ids == [2, 5, 6, 7, 8, 9, 8, 1, 3]  # [CLS] brus ##sels 1996 - 08 - [UNK] [SEP]: "22" is unknown
    assert word_ids == [None, 0, 0, 1, 1, 1, 1, 1, None]
    B_LOC = ner.TAGS.index("B-LOC")
    assert first_subtoken_labels(word_ids, tag_ids(tags)) == [-100, B_LOC, -100, 0, -100, -100, -100, -100, -100]
    words, tags = train[1]
    assert (words, tags) == (["Peter", "Blackburn"], ["B-PER", "I-PER"])
    ids, word_ids = tok.encode_words(words)
    assert ids == [2, 10, 11, 12, 3]  # [CLS] peter black ##burn [SEP]
    assert first_subtoken_labels(word_ids, tag_ids(tags)) == [-100, 1, 2, -100, -100]  # B-PER, I-PER


def test_every_word_is_labelled_once_in_order_unless_cut_off():
    tok = small_wordpiece()
    for words, tags in conll2003("dev")[:200]:
        for max_length in (8, 128):
            ids, word_ids = ner.encode_words(tok, words, max_length)
            assert len(ids) == len(word_ids) <= max_length and ids[0] == tok.cls_id and ids[-1] == tok.sep_id
            labels = [y for y in first_subtoken_labels(word_ids, tag_ids(tags)) if y != -100]
            kept = len({w for w in word_ids if w is not None})  # the words whose first piece fits
            assert labels == tag_ids(tags)[:kept]
            assert kept == len(words) or len(ids) == max_length


def test_bpe_words_encode_as_the_joined_sentence():
    tok = small_bpe()
    for words, _ in conll2003("dev")[:100]:
        ids, word_ids = ner.encode_words(tok, words, 1000)
        assert ids == tok.encode(" ".join(words))  # each word but the first after a space
        assert word_ids == sorted(word_ids) and set(word_ids) == set(range(len(words)))
        assert ner.encode_words(tok, words, 3) == (ids[:3], word_ids[:3])  # no special tokens to keep


def test_word_tags_round_trip_and_cut_words_are_o():
    tok = small_wordpiece()
    sentences = conll2003("dev")[:100]
    for max_length in (128, 10):
        for words, tags in sentences:
            ids, word_ids = tok.encode_words(words, max_length)
            labels = first_subtoken_labels(word_ids, tag_ids(tags))
            probs = np.full((len(ids), len(ner.TAGS)), 0.01)  # the gold tag most probable at each first piece
            for t, y in enumerate(labels):
                probs[t, y if y != -100 else 0] = 0.92
            decoded, confidences = ner.word_tags(probs, word_ids, len(words), ner.TAGS)
            kept = len({w for w in word_ids if w is not None})
            assert decoded == tags[:kept] + ["O"] * (len(words) - kept)
            assert confidences == [0.92] * kept + [None] * (len(words) - kept)
            if kept == len(words):
                assert ner.entity_list(words, decoded) == ner.entity_list(words, tags)
    words, tags = sentences[0]
    assert ner.entity_list(words, tags) == [{"type": "ORG", "text": "LEICESTERSHIRE", "start": 2, "end": 3}]


def test_split_words_as_conll():
    assert ner.split_words("U.S. envoy Anglo-Dutch talks, (in Bonn) 1996-12-06.") == [
        "U.S", ".", "envoy", "Anglo-Dutch", "talks", ",", "(", "in", "Bonn", ")", "1996-12-06", "."]


def tiny_bert(tok):
    return BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)


def tiny_task(model, tok, n=24, batch_size=24):
    splits = {"train": conll2003("train")[:n], "dev": conll2003("dev")[:n]}
    encoded = {s: [ner.encode_words(tok, words, 64) for words, _ in rows] for s, rows in splits.items()}
    return ner.TokenClassificationTask(model, {s: [i for i, _ in e] for s, e in encoded.items()},
                                       {s: [w for _, w in e] for s, e in encoded.items()}, splits, batch_size,
                                       tok.pad_id, seed=3)


def test_task_gradient_counts_only_first_pieces():
    tok = small_wordpiece()
    cfg = tiny_bert(tok)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    model = BertForTokenClassification(cfg, ner.TAGS, seed=1, dtype="float64")
    task = tiny_task(model, tok, n=6, batch_size=3)
    model.zero_grad()
    task.train_step(0, 0, 1.0)
    w = model.classifier.weight
    analytic = w.grad.copy()
    rng = np.random.default_rng(0)
    for i, j in zip(rng.integers(0, w.shape[0], 5), rng.integers(0, w.shape[1], 5)):
        keep = w.data[i, j].copy()
        w.data[i, j] = keep + 1e-6
        up = task.train_step(0, 0, 1.0)
        w.data[i, j] = keep - 1e-6
        down = task.train_step(0, 0, 1.0)
        w.data[i, j] = keep
        assert abs((up - down) / 2e-6 - float(analytic[i, j])) < 1e-7
    # the loss is the mean over the batch's first pieces only, each sentence scored alone (no padding)
    nll = []
    for i in task.batch_indices(0):
        ids, labels = task.encoded["train"][i], task.labels["train"][i]
        logits = model(xp.asarray([ids]), xp.ones((1, len(ids)), dtype=xp.int64))[0]  # (T, K)
        log_p = logits - xp.log(xp.exp(logits).sum(axis=-1, keepdims=True))
        nll += [-float(log_p[t, y]) for t, y in enumerate(labels) if y != -100]
    assert task.train_step(0, 0, 1.0) == pytest.approx(sum(nll) / len(nll), rel=1e-12)


def test_task_loss_decreases_and_evaluates():
    tok = small_wordpiece()
    model = BertForTokenClassification(tiny_bert(tok), ner.TAGS, seed=0)
    task = tiny_task(model, tok)
    optimizer = AdamW(model, lr=3e-3)
    losses = []
    for it in range(30):
        model.zero_grad()
        losses.append(task.train_step(it, 0, 1.0))
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0], losses
    scores = task.evaluate()
    assert set(scores) == {"val_loss", "val_precision", "val_recall", "val_f1", "val_accuracy"}
    assert all(0.0 <= scores[k] <= 1.0 for k in scores if k != "val_loss") and scores["val_loss"] > 0
    # predictions come back per sentence, cut to its length, as the sentence alone gives them
    probs = task.predict(task.encoded["dev"])
    ids = task.encoded["dev"][5]
    alone = to_host(model(xp.asarray([ids]), xp.ones((1, len(ids)), dtype=xp.int64))[0])
    assert probs[5].shape == (len(ids), 9)
    assert np.abs(probs[5] - np.exp(alone) / np.exp(alone).sum(axis=-1, keepdims=True)).max() < 1e-5


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_save_and_load_give_identical_logits(kind, tmp_path):
    if kind == "bert":
        model = BertForTokenClassification(tiny_bert(small_wordpiece()), ner.TAGS, seed=2)
    else:
        model = GPTForTokenClassification(GPTConfig(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=2),
                                          ner.TAGS, pad_token_id=7, seed=2)
    for p in model.parameters():  # every weight away from its initialisation, the head's too
        p.data += xp.asarray(np.random.default_rng(0).standard_normal(p.shape).astype(p.data.dtype)) * 0.1
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architectures"] == [type(model).architecture] and config["num_labels"] == 9
    assert config["id2label"] == {str(i): t for i, t in enumerate(ner.TAGS)}
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert loaded.label_names == ner.TAGS and loaded.pad_token_id == model.pad_token_id
    ids = xp.asarray([[3, 9, 4, 5, 1], [3, 6, 4, 0, 0]])
    mask = xp.asarray([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    assert (model.eval()(ids, mask) == loaded.eval()(ids, mask)).all()


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A tiny BertForPreTraining (pooler and cls heads included) and a tiny GPT, each with a tokenizer
    trained on CoNLL sentences, saved as train.py saves them."""
    root = tmp_path_factory.mktemp("pre")
    tok = small_wordpiece()
    BertForPreTraining(tiny_bert(tok), seed=0).save_pretrained(str(root / "bert"), extra_files=tok.save)
    bpe = small_bpe()
    GPT(GPTConfig(vocab_size=bpe.vocab_size, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        str(root / "gpt"), extra_files=bpe.save)
    return root


def test_finetune_ner_reports_and_predicts(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "ft"
    common = ["--task", "ner", "--max-train-examples", "32", "--batch-size", "16", "--epochs", "1",
              "--evals-per-epoch", "1", "--max-length", "64", "--no-progress", "--out-dir", str(out)]
    results = finetune.main(common + ["--init", str(tiny_checkpoints / "bert")])
    printed = capsys.readouterr().out
    assert "initialised fresh: classifier.bias, classifier.weight" in printed
    assert "not used: bert.pooler.dense.bias, bert.pooler.dense.weight, cls." in printed
    assert set(results) == {"dev", "test"}
    dev = json.loads((out / "report-dev.json").read_text())
    assert dev["note"] == ner.NOTE and (out / "report-dev.md").exists() and (out / "report-test.md").exists()
    matrix = np.array(dev["confusion_matrix"]["rows_gold_cols_pred"])
    assert matrix.sum() == 51362  # every word of eng.testa, cut off or not
    gold = [tags for _, tags in conll2003("dev")]
    assert matrix.sum(axis=1).tolist() == [sum(t == tag for s in gold for t in s) for tag in ner.TAGS]
    assert sum(s["support"] for s in dev["scores"]["per_type"].values()) == dev["scores"]["support"] == 5942
    assert dev["scores"]["accuracy"] == pytest.approx(np.trace(matrix) / 51362)
    assert results["test"]["support"] == 5648  # eng.testb's entities
    for m in dev["confident_mistakes"]:
        assert m["gold"] != m["pred"] and 0 < m["confidence"] <= 1
    config = json.loads((out / "best" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and len(config["id2label"]) == 9
    finetune.main(common + ["--predict", "Peter Blackburn visited Brussels on Monday."])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["words"] == ["Peter", "Blackburn", "visited", "Brussels", "on", "Monday", "."]
    assert len(line["tags"]) == 7 and set(line["tags"]) <= set(ner.TAGS)
    assert line["entities"] == ner.entity_list(line["words"], line["tags"])


def test_finetune_ner_gpt_from_scratch(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "gpt"
    results = finetune.main(["--task", "ner", "--init", "none", "--arch-from", str(tiny_checkpoints / "gpt"),
                             "--max-train-examples", "16", "--batch-size", "16", "--epochs", "1", "--max-length", "64",
                             "--no-progress", "--out-dir", str(out)])
    assert "random initialisation" in capsys.readouterr().out
    assert results["dev"]["support"] == 5942 and 0.0 <= results["dev"]["f1"] <= 1.0
    assert json.loads((out / "best" / "config.json").read_text())["architectures"] == ["GPT2ForTokenClassification"]
    (tmp_path / "texts.txt").write_text("EU rejects German call\n\n")
    finetune.main(["--task", "ner", "--out-dir", str(out), "--predict-file", str(tmp_path / "texts.txt")])
    lines = [json.loads(s) for s in capsys.readouterr().out.strip().splitlines()]
    assert [len(x["tags"]) for x in lines] == [4]  # the blank line is skipped
    assert metrics.entities(lines[0]["tags"]) == [(e["type"], e["start"], e["end"]) for e in lines[0]["entities"]]


def test_first_subtoken_labels():
    # [CLS] Jo ##hn lives in Par ##is [SEP]; words: John=B-PER(1) lives=O(0) in=O Paris=B-LOC(2)
    word_ids = [None, 0, 0, 1, 2, 3, 3, None]
    assert first_subtoken_labels(word_ids, [1, 0, 0, 2]) == [-100, 1, -100, 0, 0, 2, -100, -100]
