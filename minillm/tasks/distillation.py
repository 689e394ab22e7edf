"""Knowledge distillation (Hinton et al., 2015) for sequence classification.

The student is trained on a mix of the teacher's softened probabilities and the hard labels,

    loss = alpha * T^2 KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

(nn/loss.py's distillation_forward; s, t the student's and the teacher's logits).
The teacher's logits over the training texts are computed once, before
training, and each batch reads its rows of that table: the teacher costs one
pass over the data, not one per epoch. The teacher reads the texts through its
own tokenizer, so it need not share the student's.
"""

from minillm.backend import np, to_device, to_float
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward, distillation_backward, distillation_forward
from minillm.tasks.batching import map_by_length
from minillm.tasks.classification import SequenceClassificationTask


def teacher_logits(teacher, sequences, batch_size, pad_id, progress=False):
    """The teacher's logits (N, K) on the host for the id lists it reads, in the order given."""
    teacher.eval()
    return map_by_length(lambda ids, mask: teacher(ids, mask), sequences, batch_size, pad_id, progress=progress)


class DistillationTask(SequenceClassificationTask):
    """SequenceClassificationTask whose training loss mixes in the teacher's softened probabilities.

    logits: (N_train, K) host array, row i the teacher's logits for training text i; temperature T;
    alpha the weight of the distillation term (1 - alpha that of the labels). Evaluation is unchanged:
    the student's own accuracy on dev.
    """

    def __init__(self, model, encoded, labels, batch_size, pad_id, logits, temperature, alpha, **kwargs):
        super().__init__(model, encoded, labels, batch_size, pad_id, **kwargs)
        if len(logits) != len(encoded["train"]):
            raise ValueError(f"{len(logits)} rows of teacher logits for {len(encoded['train'])} training texts")
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError(f"distillation needs a temperature > 0 and 0 <= alpha <= 1, got {temperature}, {alpha}")
        self.logits, self.temperature, self.alpha = np.asarray(logits, dtype=np.float32), temperature, alpha

    def train_step(self, it, micro, scale):
        rows = self.batch_indices(it * self.grad_accum + micro)
        ids, mask = self.pad(rows)
        logits = self.model(ids, mask)  # (B, K)
        hard, hard_cache = cross_entropy_forward(logits, to_device(np.array([self.labels["train"][i] for i in rows])))
        soft, soft_cache = distillation_forward(logits, to_device(self.logits[rows], dtype=logits.dtype),
                                                self.temperature)
        dlogits = cross_entropy_backward(scale * (1 - self.alpha), hard_cache)
        dlogits += distillation_backward(scale * self.alpha, soft_cache)
        self.model.backward(dlogits)
        return to_float(self.alpha * soft + (1 - self.alpha) * hard)
