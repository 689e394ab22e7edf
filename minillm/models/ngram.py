"""n-gram language models: p(w_t | w_{t-n+1} .. w_{t-1}) from counts.

    model = train_ngram(lines, order=5, smoothing="modified-kneser-ney")
    model.evaluate(test_lines)  # {"cross_entropy": nats/token, "perplexity": ..., "tokens": ...}
    model.sample(host_rng(0))   # a sentence, as a list of tokens

Smoothings (`smoothing=`):
- "ml": maximum likelihood, p = c(ctx w) / c(ctx). A context never seen in
  training falls back to its longest seen suffix; an unseen word after a seen
  context has probability 0 (perplexity inf): that is what ML means.
- "add-k" (k=...), "laplace" (k=1): p = (c(ctx w) + k) / (c(ctx) + k |V|).
- "kneser-ney": interpolated Kneser-Ney, one discount per order.
- "modified-kneser-ney": three discounts per order, as KenLM's lmplz
  (see kneser_ney.py); perplexities agree with lmplz + query.

Conventions (lmplz's): each line is a sentence `<s> w1 .. wk </s>`; <s> is
only ever a context, </s> is predicted and counted as a token; |V| counts
every word but <s> (so </s> and <unk> are in); words outside the vocabulary
become <unk> and are counted (`evaluate` reports with and without them).
Contexts never cross sentence boundaries: the first word is predicted from
<s> alone. Tokenization and the <unk> policy: see ngram_counts.py.

Both kinds of model answer queries on arrays. A history is a matrix (M, n-1)
of word ids, right-aligned, -1 before the sentence start; the row of any
n-gram is found by walking its words from the left through the sorted key
tables with `searchsorted` (ngram_counts.py explains the keys).
"""

import math

from minillm.backend import np
from minillm.models import kneser_ney
from minillm.models.ngram_counts import BOS_ID, EOS_ID, UNK_ID, count_ngrams, encode_evaluation, encode_training

SMOOTHINGS = ("ml", "add-k", "laplace", "kneser-ney", "modified-kneser-ney")
_BATCH = 1 << 20  # positions scored at once: bounds the memory of the history matrix


class NGramModel:
    """What every n-gram model shares: the vocabulary, the key tables, queries."""

    def __init__(self, vocab, keys):
        self.vocab = vocab
        self.keys = keys  # list (index n-1) of sorted int64 keys of the n-grams of order n
        self.order = len(keys)

    def find(self, n, prefix_rows, words):
        """Rows of the n-grams (prefix, word) in table n, -1 where absent (or the prefix is)."""
        if n == 1:
            return words.copy()
        keys = self.keys[n - 1]
        if len(keys) == 0:  # e.g. trigrams of a corpus of one-word lines
            return np.full(len(words), -1, dtype=np.int64)
        key = prefix_rows * len(self.vocab) + words
        at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        return np.where((prefix_rows >= 0) & (words >= 0) & (keys[at] == key), at, -1)

    def context_rows(self, history):
        """history (M, n-1) -> list of rows (M,) of its last k words in table k, k = 1..n-1 (-1: absent)."""
        width = history.shape[1]
        rows = []
        for k in range(1, width + 1):
            row = history[:, width - k]
            for j in range(width - k + 1, width):
                row = self.find(j - (width - k) + 1, row, history[:, j])
            rows.append(row)
        return rows

    def log10_prob(self, history, words):
        """log10 p(word | history) for each row: history (M, n-1), words (M,)."""
        raise NotImplementedError

    def next_log10_probs(self, context=()):
        """log10 p(w | <s> context) for every word id w (the <s> entry is -inf)."""
        sentence = np.concatenate([np.full(self.order, -1), [BOS_ID], self.vocab.ids(list(context))])
        history = sentence[len(sentence) - (self.order - 1):].astype(np.int64)  # the last n-1 ids, -1 before <s>
        V = len(self.vocab)
        out = self.log10_prob(np.tile(history, (V, 1)), np.arange(V))
        out[BOS_ID] = -np.inf
        return out

    def evaluate(self, lines):
        """Cross-entropy (nats/token) and perplexity over `lines`, </s> included.

        Returns also the same without OOV tokens (as KenLM's query prints both:
        the OOVs' own probabilities are left out, their contexts stay).
        """
        corpus = encode_evaluation(lines, self.vocab)
        targets = np.flatnonzero(corpus.offset > 0)  # every position but <s>
        known, unknown = 0.0, 0.0  # sums of log10 p over in-vocabulary tokens and over OOVs
        for begin in range(0, len(targets), _BATCH):
            t = targets[begin:begin + _BATCH]
            log10p = self.log10_prob(_histories(corpus, t, self.order), corpus.seq[t])
            is_oov = corpus.seq[t] == UNK_ID
            known += float(log10p[~is_oov].sum())
            unknown += float(log10p[is_oov].sum())
        tokens = len(targets)
        oov = int(np.count_nonzero(corpus.seq[targets] == UNK_ID))
        nats = -(known + unknown) * math.log(10) / max(tokens, 1)
        nats_known = -known * math.log(10) / max(tokens - oov, 1)
        return {"cross_entropy": nats, "perplexity": math.exp(nats), "tokens": tokens, "oov": oov,
                "cross_entropy_without_oov": nats_known, "perplexity_without_oov": math.exp(nats_known),
                "tokens_without_oov": tokens - oov}

    def sample(self, rng, max_tokens=100, context=()):
        """Draw one sentence after <s> (and `context`), word by word, until </s> or max_tokens."""
        tokens = list(context)
        for _ in range(max_tokens):
            p = 10.0 ** self.next_log10_probs(tokens)
            w = int(rng.choice(len(p), p=p / p.sum()))
            if w == EOS_ID:
                break
            tokens.append(self.vocab.words[w])
        return tokens[len(context):]


def _histories(corpus, targets, order):
    """(M, order-1) ids of the words before each target position, -1 before its sentence."""
    distance = np.arange(order - 1, 0, -1)  # leftmost column is the farthest word
    history = corpus.seq[np.maximum(targets[:, None] - distance, 0)]
    return np.where(corpus.offset[targets][:, None] >= distance, history, -1)


class BackoffModel(NGramModel):
    """An ARPA-style model: log10 p for every stored n-gram, log10 backoff for every context.

        p(w | ctx) = p*(ctx w)                       if ctx w is stored
                   = backoff(ctx) p(w | ctx')        otherwise (ctx' drops ctx's first word)

    For the Kneser-Ney models p* is the interpolated probability and
    backoff(ctx) = gamma(ctx), so this equals the interpolation recursion.
    """

    def __init__(self, vocab, keys, log10_p, log10_backoff, smoothing="arpa", discounts=None):
        super().__init__(vocab, keys)
        self.log10_p = log10_p
        self.log10_backoff = log10_backoff
        self.smoothing = smoothing
        self.discounts = discounts  # per order (D1, D2, D3+) when estimated here

    def log10_prob(self, history, words):
        contexts = self.context_rows(history)
        result = np.zeros(len(words))
        backed_off = np.zeros(len(words))  # sum of log10 backoffs of contexts that did not match
        done = np.zeros(len(words), dtype=bool)
        for k in range(self.order - 1, -1, -1):  # context length, longest first
            context = contexts[k - 1] if k else np.zeros(len(words), dtype=np.int64)
            rows = self.find(k + 1, context, words)
            hit = ~done & (rows >= 0)
            result[hit] = self.log10_p[k][rows[hit]] + backed_off[hit]
            done |= hit
            if k:
                missed = ~done & (context >= 0)
                backed_off[missed] += self.log10_backoff[k - 1][context[missed]]
        return result


class CountModel(NGramModel):
    """Maximum likelihood and add-k from raw counts, computed at query time.

        p(w | ctx) = (c(ctx w) + k) / (c(ctx) + k |V|),    c(ctx) = sum_x c(ctx x)

    with k = 0 for maximum likelihood. ctx is the whole history (n-1 words,
    fewer at a sentence start); ML shortens it until it was seen.
    """

    def __init__(self, vocab, tables, k):
        super().__init__(vocab, [t.keys for t in tables])
        self.counts = [t.counts for t in tables]
        self.k = k
        self.smoothing = "ml" if k == 0 else "add-k"
        V = len(vocab)
        # context totals c(ctx) for the contexts of each order; the unigram context is "nothing"
        self.context_totals = [np.array([self.counts[0].sum()])] + [
            np.bincount(t.keys // V, weights=t.counts, minlength=len(lower.keys))
            for lower, t in zip(tables, tables[1:])]

    def log10_prob(self, history, words):
        contexts = self.context_rows(history)
        available = (history >= 0).sum(axis=1)  # words of history inside the sentence
        predicted = len(self.vocab) - 1  # |V|: every word but <s>
        result = np.zeros(len(words))
        done = np.zeros(len(words), dtype=bool)
        for k in range(self.order - 1, -1, -1):
            context = contexts[k - 1] if k else np.zeros(len(words), dtype=np.int64)
            total = _take(self.context_totals[k], context)
            use = ~done & (available >= k)
            if self.k == 0:
                use &= total > 0
            rows = self.find(k + 1, context, words)
            count = _take(self.counts[k], rows)
            with np.errstate(divide="ignore"):
                result[use] = np.log10((count[use] + self.k) / (total[use] + self.k * predicted))
            done |= use
        return result


def _take(values, rows):
    """values[rows] as floats, 0 where a row is -1 (absent); `values` may be empty."""
    out = np.zeros(len(rows))
    found = rows >= 0
    out[found] = values[rows[found]]
    return out


def train_ngram(train_lines, order=3, smoothing="modified-kneser-ney", k=1.0, special_tokens="skip",
                discount_fallback=kneser_ney.KENLM_FALLBACK):
    """Count `train_lines` (strings, or lists of tokens) and estimate an n-gram model.

    order: n (1 = unigram). k: the add-k constant. special_tokens: what to do
    with literal <s>, </s>, <unk> in training text ("skip" or "error").
    discount_fallback: modified Kneser-Ney's (D1, D2, D3+) for orders whose
    counts of counts cannot give them (see kneser_ney.discounts; interpolated
    Kneser-Ney falls back to D = 0.75); those orders are listed in
    `model.fallback_orders` (lmplz would stop unless given --discount_fallback).
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {', '.join(SMOOTHINGS)}")
    if int(order) != order or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    vocab, corpus = encode_training(train_lines, special_tokens)
    tables = count_ngrams(corpus, order, len(vocab))
    if smoothing in ("ml", "add-k", "laplace"):
        k = {"ml": 0.0, "laplace": 1.0}.get(smoothing, k)
        if k < 0 or (smoothing == "add-k" and k == 0):
            raise ValueError(f"add-k needs k > 0 (k = 0 is smoothing='ml'), got {k}")
        model = CountModel(vocab, tables, k)
    else:
        modified = smoothing == "modified-kneser-ney"
        fallback = discount_fallback if modified else (0.75,) * 3
        adjusted = kneser_ney.adjusted_counts(tables)
        estimates = [kneser_ney.discounts(a, modified, fallback) for a in adjusted]
        order_discounts = [d for d, _ in estimates]
        log10_p, log10_bo = kneser_ney.interpolate(tables, adjusted, order_discounts, len(vocab))
        model = BackoffModel(vocab, [t.keys for t in tables], log10_p, log10_bo, smoothing, order_discounts)
        model.fallback_orders = [n for n, (_, fell_back) in enumerate(estimates, 1) if fell_back]
    model.train_tokens = int(np.count_nonzero(corpus.offset))  # words and </s>, as lmplz counts them
    return model
