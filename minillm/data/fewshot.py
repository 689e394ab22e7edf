"""Few-shot splits: K labelled examples per class, drawn five times, from a classification task's train split.

For each task of data/labelled.classification_data the training pool is the train split less every
text that also occurs in the evaluation split (SST-2's train phrases include some of dev's short
sentences word for word), so a drawn example is never one that is scored. The evaluation set is
the whole of one split:

    sentiment   SST-2 dev (872 sentences; GLUE's test has no labels)
    news        AG News "test" as data/labelled.ag_news defines it: without the official train.csv,
                test.csv's 7,600 articles are split 70/10/20 by class and this is the 20% (1,520),
                not comparable with published AG News figures
    intent      SNIPS test (700 utterances)

A draw is fixed by (seed, K): each class's pool indices are shuffled once by a generator seeded
with (seed, class), and the draw takes the first K of every class. The draws of one seed are
therefore nested, the K = 8 draw inside the K = 16 one inside the K = 32 one, so a learning curve
adds examples rather than swapping them. A class with fewer than K examples in the pool is an
error naming the class and its size (no silent cap). K = 0 draws nothing (zero-shot).
"""

import dataclasses

from minillm.backend import host_rng
from minillm.data.labelled import classification_data

K_VALUES = (0, 8, 16, 32, 64, 256)  # examples per class
DRAW_SEEDS = (13, 21, 42, 87, 100)  # the five draws (LM-BFF's seeds, Gao et al. 2021)
EVAL_SPLIT = {"sentiment": "dev", "news": "test", "intent": "test"}


@dataclasses.dataclass
class FewShotTask:
    """A task's training pool (texts, labels), its evaluation set and what they are."""
    task: str
    names: list  # class names, in label order
    pool_texts: list
    pool_labels: list
    eval_texts: list
    eval_labels: list
    eval_split: str
    note: str

    def draw(self, k, seed):
        """(texts, labels) of the K-per-class draw number `seed` (see draw_indices)."""
        rows = draw_indices(self.pool_labels, k, seed, len(self.names), self.names)
        return [self.pool_texts[i] for i in rows], [self.pool_labels[i] for i in rows]


def draw_indices(labels, k, seed, n_classes, names=None):
    """Indices into `labels` of K examples of each class 0..n_classes-1, class by class.

    Class c's indices are shuffled by host_rng([seed, c]) and cut at K, so for one seed a
    smaller K's draw is the start of a larger one's. Raises ValueError when a class has fewer than K.
    """
    if k < 0:
        raise ValueError(f"K must be >= 0 examples per class, got {k}")
    by_class = [[] for _ in range(n_classes)]
    for i, y in enumerate(labels):
        by_class[y].append(i)
    rows = []
    for c, members in enumerate(by_class):
        if len(members) < k:
            name = names[c] if names else c
            raise ValueError(f"class {name!r} has {len(members)} training examples, fewer than K = {k}")
        order = host_rng([seed, c]).permutation(len(members))
        rows.extend(members[j] for j in order[:k])
    return rows


def fewshot_task(task, directory=None, eval_limit=None, min_words=0):
    """The FewShotTask of "sentiment" (SST-2), "news" (AG News) or "intent" (SNIPS).

    eval_limit: score only the first N examples of the evaluation split (quicker runs; say so when reporting).
    min_words: leave texts of fewer whitespace-separated words out of the pool (SST-2's train split holds
    every phrase of its parse trees, half of them under 7 words, where dev holds whole sentences).
    """
    splits, names, note = classification_data(task, None, directory)
    eval_split = EVAL_SPLIT[task]
    eval_texts, eval_labels = (part[:eval_limit] for part in splits[eval_split])
    scored = set(splits[eval_split][0])
    pool = [(t, y) for t, y in zip(*splits["train"]) if t not in scored]
    note = f"{note}; few-shot pool: train less {len(splits['train'][0]) - len(pool)} texts found in {eval_split}"
    if min_words:
        kept = [(t, y) for t, y in pool if len(t.split()) >= min_words]
        note += f" and {len(pool) - len(kept)} of fewer than {min_words} words"
        pool = kept
    return FewShotTask(task, names, [t for t, _ in pool], [y for _, y in pool], list(eval_texts),
                       list(eval_labels), eval_split, note)
