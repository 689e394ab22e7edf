"""Counting n-grams on arrays: lines -> word ids -> sorted tables of n-grams.

Every line is one sentence, written `<s> w1 ... wk </s>`; the sentences lie end
to end in one flat id array `seq`. An n-gram is named by an integer key made
of its prefix and its last word,

    key(w1 .. wn) = row(w1 .. w(n-1)) * V + wn,        row(w) = w for unigrams,

where row(.) is the position of the prefix in the sorted table of (n-1)-grams
and V the vocabulary size. The keys stay below rows * V (far under 2**63) for
any order, unlike a base-V number of the whole n-gram, and one `np.unique` a
order sorts, deduplicates and counts them. Sorting by key also groups the
n-grams by context, which is what smoothing sums over: sum_w c(ctx w).

Tokens and the `<unk>` policy follow KenLM's lmplz, so that our models can be
compared with it number for number:
- a line given as a string is split on ' ', '\\t', '\\r' and '\\0' only (lmplz's
  delimiters; other Unicode spaces stay inside tokens); a line given as a
  list is already tokens (characters, BPE pieces);
- ids 0, 1, 2 are `<unk>`, `<s>`, `</s>`; other words get ids in order of
  first appearance;
- in training text the literal words `<unk>`, `<s>`, `</s>` are dropped like
  whitespace (`lmplz --skip_symbols`; special_tokens="error" refuses them);
- in evaluation text every word outside the vocabulary, and the literals
  `<unk>`, `<s>`, `</s>`, become `<unk>` (an OOV), which the model scores
  like any word.
"""

import dataclasses
import itertools
import re

from minillm.backend import np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = (UNK, BOS, EOS)

_TOKEN = re.compile("[^ \t\r\n\0]+")  # a run of anything but lmplz's delimiters


def tokens_of(line):
    """One line as a list of tokens: split a string like lmplz, keep a list as is."""
    if isinstance(line, str):
        return _TOKEN.findall(line)
    return list(line)


class Vocabulary:
    """Words <-> ids, with `<unk>`, `<s>`, `</s>` at ids 0, 1, 2."""

    def __init__(self, words):
        self.words = list(words)
        if tuple(self.words[:3]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {tuple(self.words[:3])}")
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a vocabulary must not list a word twice")

    def __len__(self):
        return len(self.words)

    def ids(self, tokens):
        """Token strings -> ids (int64); words outside the vocabulary -> <unk>."""
        get = self.index.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int64, count=len(tokens))


@dataclasses.dataclass
class Corpus:
    """Sentences laid end to end: seq = <s> w.. </s> <s> w.. </s> ...

    `offset[p]` is how far position p lies from its sentence's <s>, so the
    n-gram ending at p exists when offset[p] >= n - 1.
    """

    seq: object  # (L,) int64 word ids
    offset: object  # (L,) int64 position within the sentence, 0 at <s>


def _layout(ids, lengths):
    """Word ids of all sentences (flat) and their lengths -> Corpus with <s>, </s> added."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n_sent = len(lengths)
    starts = np.concatenate([[0], np.cumsum(lengths + 2)[:-1]]).astype(np.int64)  # where each <s> goes
    seq = np.empty(int(lengths.sum()) + 2 * n_sent, dtype=np.int64)
    seq[starts] = BOS_ID
    seq[starts + lengths + 1] = EOS_ID
    sentence = np.repeat(np.arange(n_sent), lengths)
    seq[np.arange(len(ids)) + 2 * sentence + 1] = ids  # token i of the corpus shifts by the <s>, </s> before it
    offset = np.arange(len(seq)) - np.repeat(starts, lengths + 2)
    return Corpus(seq, offset)


def encode_training(lines, special_tokens="skip"):
    """Training lines -> (Vocabulary, Corpus), the vocabulary in order of first appearance."""
    if special_tokens not in ("skip", "error"):
        raise ValueError(f"special_tokens must be 'skip' or 'error', got {special_tokens!r}")
    token_lists = [tokens_of(line) for line in lines]
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    tokens = list(itertools.chain.from_iterable(token_lists))
    vocab = Vocabulary(dict.fromkeys(itertools.chain(SPECIALS, tokens)))  # dicts keep insertion order
    ids = np.fromiter(map(vocab.index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    special = ids <= EOS_ID
    if special.any():
        line_of = np.repeat(np.arange(len(lengths)), lengths)
        if special_tokens == "error":
            first = int(np.flatnonzero(special)[0])
            raise ValueError(f"training line {line_of[first] + 1}: the special word {tokens[first]} may not appear "
                             "in training text (use special_tokens='skip' to drop it, as lmplz --skip_symbols)")
        lengths = lengths - np.bincount(line_of[special], minlength=len(lengths))
        ids = ids[~special]
    return vocab, _layout(ids, lengths)


def encode_evaluation(lines, vocab):
    """Evaluation lines -> Corpus under a fixed vocabulary (unknown words -> <unk>)."""
    tokens, lengths = [], []
    for line in lines:
        line_tokens = tokens_of(line)
        tokens.extend(line_tokens)
        lengths.append(len(line_tokens))
    ids = vocab.ids(tokens)
    ids[(ids == BOS_ID) | (ids == EOS_ID)] = UNK_ID  # a literal <s> or </s> in the text is just an unknown word
    return _layout(ids, lengths)


@dataclasses.dataclass
class CountTable:
    """The distinct n-grams of one order, sorted by key (so grouped by context).

    keys[j] = row of the prefix (n-1)-gram * V + last word (for unigrams: the word id)
    counts[j] = how often the n-gram occurs (raw count; 0 for <s> and <unk> unigrams)
    suffix[j] = row of w2..wn in the (n-1)-gram table (unused for unigrams)
    bos_start[j] = whether w1 is <s>
    """

    keys: object
    counts: object
    suffix: object
    bos_start: object


def count_ngrams(corpus, order, vocab_size):
    """All n-grams of orders 1..order inside sentences -> list of CountTable (index n-1)."""
    seq, offset = corpus.seq, corpus.offset
    counts = np.bincount(seq, minlength=vocab_size)
    counts[BOS_ID] = 0  # <s> is context only, never an event
    words = np.arange(vocab_size)
    tables = [CountTable(words, counts, np.zeros(vocab_size, dtype=np.int64), words == BOS_ID)]
    row = seq  # row[p] = row of the (n-1)-gram that starts at p (valid where it fits in the sentence)
    for n in range(2, order + 1):
        # the n-gram starting at p fits when its last word, at p + n - 1, is n - 1 past <s> or more
        start = np.flatnonzero(offset[n - 1:] >= n - 1)  # (G,) start positions of all n-gram tokens
        keys = row[start] * vocab_size + seq[start + n - 1]
        unique, inverse, count = np.unique(keys, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        # every occurrence of an n-gram writes the same values: the row of w2..wn, whether w1 is <s>
        suffix = np.empty(len(unique), dtype=np.int64)
        suffix[inverse] = row[start + 1]
        bos_start = np.empty(len(unique), dtype=bool)
        bos_start[inverse] = seq[start] == BOS_ID
        tables.append(CountTable(unique, count, suffix, bos_start))
        row = np.full(len(seq), -1, dtype=np.int64)
        row[start] = inverse
    return tables
