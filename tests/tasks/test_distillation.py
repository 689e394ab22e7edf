"""DistillationTask: the loss mix and its gradient; the teacher's logits in the order of the texts, cached."""

import pytest

from minillm.backend import np, to_float, to_host, xp
from minillm.models.bert import BertConfig
from minillm.models.heads import BertForSequenceClassification
from minillm.nn.loss import cross_entropy_forward, distillation_forward
from minillm.tasks.distillation import DistillationTask, cached_teacher_logits, teacher_logits
from minillm.tokenizers.char import CharTokenizer


def tiny(seed):
    cfg = BertConfig(vocab_size=12, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                     max_position_embeddings=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg, ["a", "b", "c"], seed=seed, dtype="float64")


SEQUENCES = [[1, 5, 2], [1, 7, 7, 9, 2], [1, 3, 2], [1, 4, 4, 2]]
LABELS = [0, 2, 1, 2]


def test_teacher_logits_follow_the_order_of_the_texts():
    model = tiny(0)
    logits = teacher_logits(model, SEQUENCES, 3, 0)  # batched by length, returned in the order given
    for seq, row in zip(SEQUENCES, logits):
        alone = to_host(model(xp.asarray([seq]), xp.ones((1, len(seq)), dtype=xp.int64)))[0]
        assert np.abs(row - alone).max() < 1e-10


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_the_loss_mixes_the_teacher_and_the_labels(alpha):
    teacher = teacher_logits(tiny(1), SEQUENCES, 4, 0)
    model = tiny(2)
    encoded = {"train": SEQUENCES, "dev": SEQUENCES}
    labels = {"train": LABELS, "dev": LABELS}
    task = DistillationTask(model, encoded, labels, 4, 0, teacher, 2.0, alpha, group_by_length=False)
    rows = task.batch_indices(0)
    loss = task.train_step(0, 0, 1.0)
    grads = {n: to_host(p.grad).copy() for n, p in model.named_parameters()}
    ids, mask = task.pad(rows)
    logits = model(ids, mask)
    hard = to_float(cross_entropy_forward(logits, xp.asarray([LABELS[i] for i in rows]))[0])
    soft = to_float(distillation_forward(logits, xp.asarray(teacher[rows], dtype=logits.dtype), 2.0)[0])
    assert loss == pytest.approx(alpha * soft + (1 - alpha) * hard, rel=1e-6)
    # the gradient is the same mix of the two tasks' gradients
    for weight, other in ((alpha, 1.0), (1 - alpha, 0.0)):
        model.zero_grad()
        DistillationTask(model, encoded, labels, 4, 0, teacher, 2.0, other, group_by_length=False).train_step(0, 0,
                                                                                                             weight)
        for n, p in model.named_parameters():
            grads[n] -= 0 if p.grad is None else to_host(p.grad)
    assert max(np.abs(g).max() for g in grads.values()) < 1e-9


def test_teacher_logits_must_cover_the_training_texts():
    with pytest.raises(ValueError, match="3 rows of teacher logits for 4 training texts"):
        DistillationTask(tiny(0), {"train": SEQUENCES}, {"train": LABELS}, 2, 0, np.zeros((3, 3)), 2.0, 0.5)


def test_teacher_logits_are_cached_by_teacher_and_texts(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    teacher = tmp_path / "teacher"
    model = tiny(4)
    model.save_pretrained(str(teacher), extra_files=CharTokenizer.train("abc ").save)
    texts = ["a b", "cab", "b"]
    first, cached = cached_teacher_logits(str(teacher), texts, 8, 2)
    assert not cached and first.shape == (3, 3)
    again, cached = cached_teacher_logits(str(teacher), texts, 8, 2)
    assert cached and (again == first).all()
    assert not cached_teacher_logits(str(teacher), texts[:2], 8, 2)[1]  # other texts: computed
    assert len(list((tmp_path / "cache" / "teacher-logits").iterdir())) == 2
