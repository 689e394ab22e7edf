"""Few-shot episodes (N-way K-shot, Q queries a class) and the class split of meta-learning.

An episode is a small classification problem: N classes drawn from a pool, K labelled support
examples and Q query examples of each, all distinct. Meta-training draws its episodes from one set
of classes and meta-testing from another, disjoint one, so a method is scored on classes it never
trained on. Episode i of a sampler is a function of (seed, i) alone, as the trainer's batches are.

The split used here (META_SPLIT): SNIPS has seven intents. The three held out for meta-testing are
the three that ask for a piece of media (PlayMusic, SearchCreativeWork, SearchScreeningEvent): they
share their vocabulary of songs, films and titles, so telling them apart from a few examples is
the hard case. Meta-training sees the other four intents and AG News's four topics; its episodes
are drawn within one dataset at a time (an episode mixing a news topic with an intent is too easy
to teach anything).
"""

from minillm.backend import host_rng, np
from minillm.data.labelled import classification_data

META_TEST_INTENTS = ("PlayMusic", "SearchCreativeWork", "SearchScreeningEvent")


class EpisodeSampler:
    """Episodes over labelled examples: episode(i) -> (support (N, K), query (N, Q)) example indices.

    labels: one class label per example; groups: lists of labels, and every episode draws its N
    classes from one group (itself drawn uniformly). Row n of both arrays holds class
    classes(i)[n]. A group needs N classes and each of its classes K + Q examples.
    """

    def __init__(self, labels, groups, n_way, k_shot, n_query, seed=0):
        labels = np.asarray(labels)
        self.groups = [sorted(set(g)) for g in groups]
        self.n_way, self.k_shot, self.n_query, self.seed = n_way, k_shot, n_query, seed
        self.members = {c: np.flatnonzero(labels == c) for g in self.groups for c in g}
        for group in self.groups:
            if len(group) < n_way:
                raise ValueError(f"a group of {len(group)} classes {group} cannot make {n_way}-way episodes")
        for c, rows in self.members.items():
            if len(rows) < k_shot + n_query:
                raise ValueError(f"class {c} has {len(rows)} examples; an episode needs {k_shot} + {n_query}")

    def episode(self, index):
        """(classes (N,), support (N, K), query (N, Q)) of episode `index`."""
        rng = host_rng((self.seed, index))
        group = self.groups[rng.integers(len(self.groups))]
        classes = rng.choice(group, self.n_way, replace=False)
        picks = [rng.choice(self.members[c], self.k_shot + self.n_query, replace=False) for c in classes]
        rows = np.stack(picks)  # (N, K + Q)
        return np.asarray(classes), rows[:, :self.k_shot], rows[:, self.k_shot:]


def meta_split(data_dir=None, test_split="test"):
    """{"train": (texts, labels, groups), "test": (texts, labels, groups)}, and the class names.

    Labels index `names`: SNIPS's intents, then AG News's topics (prefixed "news:"). "train" is
    the training splits of the four meta-training intents and the four topics, in two groups;
    "test" is `test_split` ("test" or "dev") of the three held-out intents, one group.
    """
    intent_data, intents, _ = classification_data("intent", directory=data_dir)
    news_data, topics, _ = classification_data("news", directory=data_dir)
    names = list(intents) + [f"news:{t}" for t in topics]
    held_out = {intents.index(i) for i in META_TEST_INTENTS}
    seen = [c for c in range(len(intents)) if c not in held_out]

    def pick(texts, labels, keep, offset=0):
        rows = [(t, y + offset) for t, y in zip(texts, labels) if y + offset in keep]
        return [t for t, _ in rows], [y for _, y in rows]

    news = [len(intents) + c for c in range(len(topics))]
    train_texts, train_labels = pick(*intent_data["train"], set(seen))
    news_texts, news_labels = pick(*news_data["train"], set(news), offset=len(intents))
    test_texts, test_labels = pick(*intent_data[test_split], held_out)
    return {"train": (train_texts + news_texts, train_labels + news_labels, [seen, news]),
            "test": (test_texts, test_labels, [sorted(held_out)])}, names
