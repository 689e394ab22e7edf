"""Does this recording say the digit in this image? A task that needs both modalities.

Each recording is paired with a positive (an image of its digit, drawn at random) and a hard negative:
of `pool` images of other digits drawn at random, the one nearest the recording in the shared CLIP
space, so the negative is an image the aligned embeddings already confuse with the recording. Half
the pairs are positives. The towers are frozen: their token states are computed once, and only the
fusion model (models/fusion.py) trains. Evaluation uses fixed pairs of the held-out recordings and
images, with hard negatives and, for comparison, random ones; prompt_rule_accuracy is what the
aligned space decides with no fusion model at all.
"""

from minillm.backend import host_rng, np, to_device, to_float
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.tasks.clip import EVAL_BATCH
from minillm.training.task import EpochTask

HARD_POOL = 32


def match_pairs(speech_emb, speech_y, image_emb, image_y, rows, rng, pool=HARD_POOL):
    """(speech rows, image rows, labels) for the recordings `rows`: each once with a positive image (label 1)
    and once with the nearest of `pool` random other-digit images (label 0; pool=1: a random negative)."""
    by_digit = {d: np.flatnonzero(image_y == d) for d in range(10)}
    others = {d: np.flatnonzero(image_y != d) for d in range(10)}
    positives, negatives = [], []
    for r in rows:
        d = speech_y[r]
        positives.append(rng.choice(by_digit[d]))
        candidates = rng.choice(others[d], pool, replace=False)
        negatives.append(candidates[np.argmax(image_emb[candidates] @ speech_emb[r])])
    rows = np.asarray(rows)
    return (np.concatenate([rows, rows]), np.array(positives + negatives),
            np.concatenate([np.ones(len(rows), np.int64), np.zeros(len(rows), np.int64)]))


class FusionTask(EpochTask):
    """speech, image: {"train" / "held_out": (token states (N, T, C), unit embeddings (N, D), digits (N,))}."""

    def __init__(self, model, speech, image, batch_size, seed=1337, grad_accum=1):
        self.model, self.speech, self.image, self.seed, self.grad_accum = model, speech, image, seed, grad_accum
        self.per_step = batch_size // 2  # recordings a step; each gives a positive and a negative pair
        self.steps_per_epoch = len(speech["train"][2]) // self.per_step
        self.tokens_per_step = 2 * self.per_step
        held_s, held_i = speech["held_out"], image["held_out"]
        rows = np.arange(len(held_s[2]))
        self.eval_pairs = {kind: match_pairs(held_s[1], held_s[2], held_i[1], held_i[2], rows, host_rng(0), pool)
                           for kind, pool in (("hard", HARD_POOL), ("random", 1))}

    def logits(self, split, s_rows, i_rows):
        return self.model(to_device(self.speech[split][0][s_rows]), to_device(self.image[split][0][i_rows]))

    def train_step(self, it, micro, scale):
        rng = host_rng((self.seed, it * self.grad_accum + micro))
        _, emb, y = self.speech["train"]
        rows = rng.choice(len(y), self.per_step, replace=False)
        s_rows, i_rows, labels = match_pairs(emb, y, self.image["train"][1], self.image["train"][2], rows, rng)
        loss, cache = cross_entropy_forward(self.logits("train", s_rows, i_rows), to_device(labels))
        self.model.backward(cross_entropy_backward(scale, cache))  # (the frozen towers' inputs need no gradient)
        return to_float(loss)

    def evaluate(self):
        self.model.eval()
        out = {}
        for kind, (s_rows, i_rows, labels) in self.eval_pairs.items():
            pred = np.concatenate([self.logits("held_out", s_rows[k:k + EVAL_BATCH], i_rows[k:k + EVAL_BATCH])
                                   .argmax(axis=1).tolist() for k in range(0, len(labels), EVAL_BATCH)])
            out[f"val_accuracy_{kind}_negatives"] = metrics.accuracy(labels.tolist(), pred.tolist())
        return out


def prompt_rule_accuracy(pairs, speech_emb, image_emb, prompts):
    """Accuracy of the rule "a match when the recording's and the image's nearest digit prompts are the same":
    zero-shot classification of each side, compared, no training. pairs: (speech rows, image rows, labels)."""
    s_rows, i_rows, labels = pairs
    same = (speech_emb[s_rows] @ prompts.T).argmax(axis=1) == (image_emb[i_rows] @ prompts.T).argmax(axis=1)
    return float((same == (labels == 1)).mean())
