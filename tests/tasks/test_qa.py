"""Extractive QA: windows over real SQuAD contexts, targets, the span loss, answers across windows,
the saved model, and finetune.py --task qa end to end from a tiny BERT."""

import functools
import json

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np, xp
from minillm.checkpoint import load_safetensors
from minillm.cli import finetune
from minillm.data.squad import squad
from minillm.models.bert import BertConfig
from minillm.models.bert_pretraining import BertForPreTraining
from minillm.models.heads import BertForQuestionAnswering
from minillm.nn.gradcheck import gradcheck
from minillm.tasks import qa
from minillm.tasks.qa import best_spans
from minillm.tokenizers.wordpiece import WordPieceTokenizer

SLICE = 300  # dev questions the real-data tests read


@functools.lru_cache(maxsize=None)
def dev_slice():
    return squad("dev")[:SLICE]


@functools.lru_cache(maxsize=None)
def tokenizer():
    """A small WordPiece vocabulary trained on the slice's contexts: words split into many pieces."""
    return WordPieceTokenizer.train(sorted({e["context"] for e in dev_slice()}), 400)


def test_windows_of_a_long_context_cover_it_and_find_the_answer():
    tok = tokenizer()
    examples = list(dev_slice())
    index = max(range(len(examples)), key=lambda i: len(examples[i]["context"]))
    example = examples[index]
    context_tokens = tok.tokenize_with_offsets(example["context"])
    windows = qa.build_windows(tok, [example], max_length=64, doc_stride=24, max_query_length=16)
    question = len(tok.tokenize_with_offsets(example["question"])[:16])
    room = 64 - question - 3
    assert len(context_tokens) > 200 and len(windows) == 1 + -(-(len(context_tokens) - room) // 24)
    covered = set()
    for w in windows:
        assert len(w.input_ids) <= 64 and w.input_ids[0] == tok.cls_id and w.input_ids[-1] == tok.sep_id
        assert w.token_type_ids == [0] * (question + 2) + [1] * (len(w.input_ids) - question - 2)
        covered |= {o for o in w.offsets if o is not None}
    assert covered == {(s, e) for _, s, e in context_tokens}  # every context token is in some window
    first, last = qa.answer_token_span(context_tokens, example["answers"]["answer_start"][0],
                                       example["answers"]["answer_start"][0] + len(example["answers"]["text"][0]))
    holding = [w for w in windows if w.start]
    assert holding and all(w.offsets[w.start] == context_tokens[first][1:] and w.offsets[w.end] ==
                           context_tokens[last][1:] for w in holding)
    assert all((w.start, w.end) == (0, 0) for w in windows if w not in holding)
    assert len(holding) < len(windows)  # the other windows point at [CLS]


def test_gold_spans_map_back_to_the_answer_text():
    """Over a slice of dev: mapped back through the offsets, the target tokens give exactly the answer,
    unless the answer starts or ends inside a token (then the tokens' text holds it)."""
    tok, examples = tokenizer(), dev_slice()
    windows = qa.build_windows(tok, examples, max_length=96, doc_stride=32)
    mapped = {}
    for w in windows:
        if w.start:
            context = examples[w.example]["context"]
            mapped.setdefault(w.example, context[w.offsets[w.start][0]:w.offsets[w.end][1]])
    assert len(mapped) == len(examples)  # at 96 tokens every answer fits in some window
    exact = 0
    for i, text in mapped.items():
        answer, start = examples[i]["answers"]["text"][0], examples[i]["answers"]["answer_start"][0]
        offsets = tok.tokenize_with_offsets(examples[i]["context"])
        on_boundaries = (start in {s for _, s, _ in offsets}) and (start + len(answer) in {e for _, _, e in offsets})
        assert (text == answer) == on_boundaries and answer in text
        exact += text == answer
    assert exact >= 0.97 * len(examples)


HAND_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "?", "a", "b", "c", "d", "e", "f", "g", "h",
              "i", "j"]


def test_targets_point_at_cls_when_the_answer_is_not_all_inside():
    tok = WordPieceTokenizer(HAND_VOCAB)
    context = "a b c d e f g h i j"  # 10 tokens; 9 - 2 - 3 = 4 fit beside "who ?"
    example = {"id": "q", "question": "who?", "context": context,
               "answers": {"text": ["e f"], "answer_start": [context.index("e f")]}}
    windows = qa.build_windows(tok, [example], max_length=9, doc_stride=3)
    assert [w.offsets[4][0] for w in windows] == [0, 6, 12]  # windows start at tokens 0, 3, 6
    assert [(w.start, w.end) for w in windows] == [(0, 0), (5, 6), (0, 0)]  # e f: tokens 4, 5 at 4 + 4 - 3
    assert windows[1].input_ids == [2, 5, 6, 3, 10, 11, 12, 13, 3]
    assert qa.window_starts(10, 4, 9) == [0, 4, 8]  # a stride longer than a window skips nothing
    with pytest.raises(ValueError, match="no room for a context"):
        qa.build_windows(tok, [example], max_length=5)
    with pytest.raises(ValueError, match="'q': its context has no tokens"):
        qa.build_windows(tok, [{**example, "context": " "}], max_length=9)


def test_the_best_span_over_all_windows_answers():
    tok = WordPieceTokenizer(HAND_VOCAB)
    examples = [{"id": "one", "question": "who?", "context": "a b c d e f g h i j"},
                {"id": "two", "question": "who?", "context": "J I H"}]
    windows = qa.build_windows(tok, examples, max_length=9, doc_stride=3)
    assert [w.example for w in windows] == [0, 0, 0, 1]
    # window 1 holds tokens d e f g at positions 4..7; window 2 g h i j
    starts, ends, scores = np.array([4, 5, 4, 4]), np.array([5, 7, 6, 6]), np.array([1.0, 7.5, 3.0, -2.0])
    answers = qa.answers_from_spans(windows, starts, ends, scores, examples)
    assert answers == {"one": {"text": "e f g", "score": 7.5}, "two": {"text": "J I H", "score": -2.0}}


class FixedLogits:
    """A stand-in model whose logits favour one token id: start on `start_id`, end on `end_id`."""

    def __init__(self, start_id, end_id):
        self.start_id, self.end_id = start_id, end_id

    def eval(self):
        return self

    def __call__(self, ids, mask, types):
        return (ids == self.start_id) * 5.0, (ids == self.end_id) * 5.0


def test_predict_answers_decodes_batches_of_windows():
    tok = WordPieceTokenizer(HAND_VOCAB)
    examples = [{"id": "one", "question": "who?", "context": "a b c d e f g h i j"},
                {"id": "two", "question": "who? who?", "context": "h i j b"}]
    windows = qa.build_windows(tok, examples, max_length=9, doc_stride=3)
    assert [len(w.input_ids) for w in windows] == [9, 9, 9, 9, 9]
    answers, loss = qa.predict_answers(FixedLogits(tok.stoi["h"], tok.stoi["i"]), windows, examples,
                                       batch_size=2, pad_id=0, max_answer_length=30)
    assert answers == {"one": {"text": "h i", "score": 10.0}, "two": {"text": "h i", "score": 10.0}}
    assert loss > 0
    short, _ = qa.predict_answers(FixedLogits(tok.stoi["h"], tok.stoi["i"]), windows, examples, 2, 0, 1)
    assert short["one"] == {"text": "h", "score": 5.0}  # one token at most: the start wins, its end logit is 0


@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(2, 6))
def test_span_loss_gradients_and_padding(seed, b, t):
    rng = xp.random.default_rng(seed)
    logits = rng.standard_normal((b, t, 2))
    lengths = rng.integers(1, t + 1, b)
    mask = (xp.arange(t)[None, :] < lengths[:, None]).astype(xp.int64)
    starts, ends = ((rng.random(b) * lengths).astype(xp.int64) for _ in range(2))  # on each row's real tokens
    state = {}

    def loss(logits):
        value, state["cache"] = qa.span_loss_forward(logits[..., 0], logits[..., 1], mask, starts, ends)
        return xp.asarray(value)[None]

    def backward(dloss):
        return xp.stack(qa.span_loss_backward(dloss[0], state["cache"]), axis=-1)

    assert max(gradcheck(loss, backward, (logits,)).values()) <= 1e-6
    expected = 0.0
    for row in range(b):  # the mean over rows of (CE(start) + CE(end)) / 2 on the real tokens alone
        real = logits[row, :int(lengths[row])]
        log_z = xp.log(xp.exp(real).sum(axis=0))
        expected += (log_z[0] - real[starts[row], 0] + log_z[1] - real[ends[row], 1]) / 2 / b
    assert abs(float(loss(logits)[0]) - float(expected)) < 1e-12
    assert float(abs(backward(xp.ones(1)) * (mask == 0)[..., None]).max()) == 0.0  # nothing flows to padding


def test_read_questions_names_the_bad_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "who?", "context": "a b"}\n\n{"question": "who?"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r'q.jsonl:3: expected \{"question"'):
        qa.read_questions(path)
    path.write_text('{"question": "who?", "context": "a b"}\n{"question": \n', encoding="utf-8")
    with pytest.raises(ValueError, match="q.jsonl:2: invalid JSON"):
        qa.read_questions(path)


def tiny_config():
    return BertConfig(vocab_size=tokenizer().vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=128)


def test_saved_model_loads_with_identical_logits(tmp_path):
    model = BertForQuestionAnswering(tiny_config(), seed=3)
    rng = xp.random.default_rng(0)
    model.qa_outputs.weight.data = rng.standard_normal(model.qa_outputs.weight.shape).astype(xp.float32)
    model.save_pretrained(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    assert config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"}
    saved = load_safetensors(str(tmp_path / "model.safetensors"))
    assert "qa_outputs.bias" in saved and not any("pooler" in n for n in saved)
    loaded = BertForQuestionAnswering.from_pretrained(str(tmp_path))
    ids = rng.integers(5, tokenizer().vocab_size, (2, 9))
    mask = xp.ones((2, 9), dtype=xp.int64)
    mask[1, 6:] = 0
    types = (xp.arange(9)[None, :] >= 4).astype(xp.int64).repeat(2, axis=0)
    for a, b in zip(model.eval()(ids, mask, types), loaded.eval()(ids, mask, types)):
        assert (a == b).all()
    # transformers writes no id2label when it is its default; such a directory loads too
    for key in ("id2label", "label2id", "num_labels"):
        del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    from_hf = BertForQuestionAnswering.from_pretrained(str(tmp_path))
    assert from_hf.label_names == ["LABEL_0", "LABEL_1"]
    assert (from_hf.eval()(ids, mask, types)[1] == model(ids, mask, types)[1]).all()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 1-layer BERT in BertForPreTraining's layout (pooler and cls.* heads included) with its vocabulary."""
    directory = tmp_path_factory.mktemp("bert")
    BertForPreTraining(tiny_config()).save_pretrained(str(directory), extra_files=tokenizer().save)
    return directory


def test_finetune_qa_reports_and_answers(tiny_bert, tmp_path, capsys):
    out = tmp_path / "qa"
    common = ["--task", "qa", "--max-length", "64", "--doc-stride", "32", "--batch-size", "8", "--no-progress",
              "--out-dir", str(out)]
    results = finetune.main(common + ["--init", str(tiny_bert), "--max-train-examples", "16",
                                      "--max-eval-examples", "16", "--epochs", "1"])
    printed = capsys.readouterr().out
    assert "initialised fresh: qa_outputs.bias, qa_outputs.weight" in printed
    assert "not used: bert.pooler.dense.bias, bert.pooler.dense.weight, cls." in printed
    assert "train-v1.1.json is absent" in printed and "train 16 questions in" in printed
    report = json.loads((out / "report-dev.json").read_text())
    assert report["scores"]["count"] == 16 and results["dev"] == report["scores"]
    assert 0.0 <= report["scores"]["exact_match"] <= report["scores"]["f1"] <= 100.0
    assert "not comparable with published" in report["note"]
    wrong = report["confident_wrong_answers"]
    assert 0 < len(wrong) <= 10 and [w["score"] for w in wrong] == sorted((w["score"] for w in wrong), reverse=True)
    assert {"question", "gold", "predicted", "score"} <= set(wrong[0])
    assert "not comparable" in (out / "report-dev.md").read_text()
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"val_loss", "val_exact_match", "val_f1"} <= set(history[0])
    assert json.loads((out / "best" / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]

    context = dev_slice()[0]["context"]
    finetune.main(common + ["--predict", "Which team won?", "--context", context])
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["answer"] in context and answer["answer"] and isinstance(answer["score"], float)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": e["question"], "context": e["context"]}) + "\n"
                                 for e in dev_slice()[:3]), encoding="utf-8")
    finetune.main(common + ["--predict-file", str(questions)])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [x["question"] for x in lines] == [e["question"] for e in dev_slice()[:3]]
    with pytest.raises(SystemExit, match="--context TEXT"):
        finetune.main(common + ["--predict", "Which team won?"])


def test_best_spans_respects_order_length_and_context():
    start = np.array([[9.0, 1.0, 5.0, 0.0, 0.0]])
    end = np.array([[0.0, 9.0, 0.0, 4.0, 8.0]])
    allowed = np.array([[False, True, True, True, True]])  # position 0 is the question
    s, e, score = best_spans(start, end, allowed, max_answer_length=2)
    assert (s[0], e[0], score[0]) == (1, 1, 10.0)  # (2, 4) scores 13 but is 3 tokens long
    s, e, score = best_spans(start, end, allowed, max_answer_length=3)
    assert (s[0], e[0], score[0]) == (2, 4, 13.0)
    tie = best_spans(np.zeros((1, 3)), np.zeros((1, 3)), np.ones((1, 3), bool), 3)
    assert (tie[0][0], tie[1][0]) == (0, 0)  # ties: earliest start, shortest span
