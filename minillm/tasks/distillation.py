"""Knowledge distillation (Hinton et al., 2015) for sequence classification.

The student is trained on a mix of the teacher's softened probabilities and the hard labels,

    loss = alpha * T^2 KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

(nn/loss.py's distillation_forward; s, t the student's and the teacher's logits).
The teacher's logits over the training texts are computed once, before
training, and each batch reads its rows of that table: the teacher costs one
pass over the data, not one per epoch, and the table is cached on disk for the
next student of the same teacher and texts. The teacher reads the texts
through its own tokenizer, so it need not share the student's.
"""

import hashlib
import os

from minillm.backend import np, to_device, to_float
from minillm.checkpoint import cache_dir, load_safetensors, save_safetensors
from minillm.data.lm_data import texts_digest
from minillm.models.auto import load_model, max_positions
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward, distillation_backward, distillation_forward
from minillm.tasks.batching import map_by_length
from minillm.tasks.classification import SequenceClassificationTask, encode_all, tokenizer_pad_id
from minillm.tokenizers import load_tokenizer


def teacher_logits(teacher, sequences, batch_size, pad_id, progress=False):
    """The teacher's logits (N, K) on the host for the id lists it reads, in the order given."""
    teacher.eval()
    return map_by_length(lambda ids, mask: teacher(ids, mask), sequences, batch_size, pad_id, progress=progress)


def cached_teacher_logits(directory, texts, max_length, batch_size, progress=False):
    """(the logits (N, K) of the teacher saved in `directory` on `texts`, whether they came from the cache).

    They are kept in $MINILLM_CACHE/teacher-logits/, named by a hash of the teacher's files, the texts
    and max_length, so the students of one teacher share one pass of it over the data.
    """
    key = [file_digest(os.path.join(directory, name)) for name in ("config.json", "model.safetensors")]
    path = os.path.join(cache_dir(), "teacher-logits", f"{texts_digest(texts + key + [str(max_length)])}.safetensors")
    if os.path.exists(path):
        return load_safetensors(path)["logits"], True
    teacher, tokenizer = load_model(directory), load_tokenizer(directory)
    encoded = encode_all(tokenizer, texts, min(max_length, max_positions(teacher.config)))
    logits = teacher_logits(teacher, encoded, batch_size, tokenizer_pad_id(tokenizer), progress)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_safetensors(path + ".tmp", {"logits": logits})
    os.replace(path + ".tmp", path)  # whole or absent
    return logits, False


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
