"""EDA, easy data augmentation (Wei & Zou 2019): four edits that make new training texts from old ones.

A text is split into words on white space; with n = max(1, int(alpha * words)) (alpha the rate):

    synonym replacement  n different words (not stopwords, with neighbours) each replaced by a neighbour
    random insertion     n times, a neighbour of a random word (not a stopword) inserted at a random place
    random swap          n times, two random positions exchange their words
    random deletion      each word dropped with probability alpha; if none is left, one random word stays

No thesaurus is available offline, so a word's "synonyms" are its nearest neighbours by cosine
similarity in a pretrained embedding table: all-MiniLM-L6-v2's word-piece embeddings, whole-word
pieces only (no "##" continuations, no special tokens, alphabetic), the word itself and stopwords
excluded. Neighbours in such a table are words used alike, which includes antonyms ("good", "bad"):
that is part of what is measured. eda() makes n_aug copies of every text, copy j by edit j mod 4,
and returns them after the originals, labels repeated; everything is seeded.
"""

from minillm.backend import host_rng, np

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves 's n't
""".split())


class NeighbourTable:
    """Whole words of a vocabulary and their unit embedding rows: neighbours(word, k) by cosine similarity."""

    def __init__(self, words, vectors):
        if len(words) != len(vectors):
            raise ValueError(f"{len(words)} words for {len(vectors)} embedding rows")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # (V, D)
        self.allowed = np.array([w not in STOPWORDS for w in self.words])  # (V,)
        self.cache = {}

    @classmethod
    def from_vocabulary(cls, tokens, table):
        """The rows of an embedding table (V, D) whose tokens are whole alphabetic words ("##ing" and
        "[CLS]" are not)."""
        rows = [i for i, t in enumerate(tokens) if t.isalpha()]
        return cls([tokens[i] for i in rows], np.asarray(table)[rows])

    def neighbours(self, word, k):
        """The k words nearest `word` (lower-cased), best first, never itself nor a stopword; [] if unknown."""
        word = word.lower()
        if word not in self.index or word in STOPWORDS:
            return []
        if (word, k) not in self.cache:
            sims = self.unit @ self.unit[self.index[word]]  # (V,)
            sims[~self.allowed] = -np.inf
            sims[self.index[word]] = -np.inf
            order = np.argsort(-sims, kind="stable")[:k]
            self.cache[word, k] = [self.words[i] for i in order if np.isfinite(sims[i])]
        return self.cache[word, k]


def synonym_replacement(words, n, table, rng, top_k):
    """Up to n different replaceable words, each replaced by one of its top_k neighbours chosen at random."""
    out = list(words)
    candidates = [i for i, w in enumerate(words) if table.neighbours(w, top_k)]
    for i in rng.permutation(len(candidates))[:n]:
        choices = table.neighbours(words[candidates[i]], top_k)
        out[candidates[i]] = choices[rng.integers(len(choices))]
    return out


def random_insertion(words, n, table, rng, top_k):
    """n times: a neighbour of a random replaceable word inserted at a random position (none if no word has one)."""
    out = list(words)
    for _ in range(n):
        candidates = [w for w in out if table.neighbours(w, top_k)]
        if not candidates:
            break
        choices = table.neighbours(candidates[rng.integers(len(candidates))], top_k)
        out.insert(int(rng.integers(len(out) + 1)), choices[rng.integers(len(choices))])
    return out


def random_swap(words, n, rng):
    """n times, the words at two random positions exchanged."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.choice(len(out), 2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words, p, rng):
    """Each word dropped with probability p; at least one word is kept."""
    if len(words) <= 1:
        return list(words)
    kept = [w for w, drop in zip(words, rng.random(len(words)) < p) if not drop]
    return kept or [words[rng.integers(len(words))]]


def eda(texts, labels, table, n_aug=4, alpha=0.1, seed=0, top_k=5):
    """(texts + their augmented copies, labels + the copies' labels): n_aug copies a text, copy j made by
    synonym replacement, insertion, swap or deletion as j mod 4, at rate alpha."""
    rng = host_rng([seed, 3])
    new_texts, new_labels = list(texts), list(labels)
    for text, label in zip(texts, labels):
        words = text.split()
        n = max(1, int(alpha * len(words)))
        for j in range(n_aug):
            op = j % 4
            if op == 0:
                out = synonym_replacement(words, n, table, rng, top_k)
            elif op == 1:
                out = random_insertion(words, n, table, rng, top_k)
            elif op == 2:
                out = random_swap(words, n, rng)
            else:
                out = random_deletion(words, alpha, rng)
            new_texts.append(" ".join(out))
            new_labels.append(label)
    return new_texts, new_labels
