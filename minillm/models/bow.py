"""Bag-of-n-grams baselines: multinomial naive Bayes and softmax (logistic) regression.

A text becomes a sparse row of n-gram weights x (unigrams and bigrams, counts
or tf-idf), stored as CSR: the nonzero `values`, their `columns`, and `indptr`
where row n owns values[indptr[n]:indptr[n+1]]. Both classifiers are linear
in x, scores = x W + b with W (V, C):

    naive Bayes:          W[v, c] = log P(v | c) (add-alpha counts),  b[c] = log P(c)
    softmax regression:   W, b learned by minimising mean cross-entropy with AdamW (tasks/bow.py)

The sparse product is an embedding lookup and a sum: row n's scores are
sum_k values[k] * W[columns[k]] over its nonzeros, so the forward gathers rows
of W and scatter-adds them per example, and the backward scatter-adds into dW
exactly as the embedding backward does. The naive Bayes count table is the
same transposed product with one-hot labels: counts = X^T Y.

Naive Bayes is estimated in closed form (counts); the softmax regression is
trained by minillm.tasks.bow, and `python -m minillm.cli.bow --task
sentiment|news|intent` trains both and prints dev/test accuracy and macro-F1.
"""

import collections
import dataclasses
import re

from minillm.backend import np, scatter_add, to_device, to_host, xp
from minillm.nn.functional import softmax_forward
from minillm.nn.layers import Module, Parameter

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # ideographs: Chinese has no spaces, so each is a token
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


# ------------------------------------------------------------ features
def ngrams(text, n_max=2):
    """Lower-cased word, punctuation and single-ideograph tokens, then every n-gram up to n_max joined by spaces."""
    tokens = _TOKEN.findall(text.lower())
    return [" ".join(tokens[i:i + n]) for n in range(1, n_max + 1) for i in range(len(tokens) - n + 1)]


@dataclasses.dataclass
class SparseRows:
    """A CSR matrix on the host: row n is values[indptr[n]:indptr[n+1]] at those columns."""
    values: object  # (nnz,) float
    columns: object  # (nnz,) int
    indptr: object  # (N + 1,) int
    n_columns: int

    def __len__(self):
        return len(self.indptr) - 1

    def row_ids(self):
        """The row of each nonzero: (nnz,)."""
        return np.repeat(np.arange(len(self)), np.diff(self.indptr))

    def take(self, rows):
        """The sub-matrix of the given rows, in that order (a mini-batch)."""
        rows = np.asarray(rows)
        starts, lengths = self.indptr[rows], np.diff(self.indptr)[rows]
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        # position of every kept nonzero: its row's start plus its offset inside the row
        positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return SparseRows(self.values[positions], self.columns[positions], indptr, self.n_columns)


class NgramVectorizer:
    """Texts -> SparseRows over the n-grams seen at least min_count times in the training texts.

    With tfidf, a count c of n-gram v in a text becomes c * idf(v), with the smoothed
    idf(v) = ln((1 + N) / (1 + df(v))) + 1, and each row is scaled to unit L2 norm.
    """

    def __init__(self, n_max=2, min_count=1, tfidf=False):
        self.n_max, self.min_count, self.tfidf = n_max, min_count, tfidf
        self.vocabulary = None
        self.idf = None

    def fit(self, texts):
        counts, document_frequency = collections.Counter(), collections.Counter()
        for text in texts:
            grams = ngrams(text, self.n_max)
            counts.update(grams)
            document_frequency.update(set(grams))
        kept = sorted(g for g, c in counts.items() if c >= self.min_count)  # sorted: the same columns every run
        self.vocabulary = {g: i for i, g in enumerate(kept)}
        df = np.array([document_frequency[g] for g in kept], dtype=np.float64)
        self.idf = np.log((1 + len(texts)) / (1 + df)) + 1
        return self

    def transform(self, texts):
        if self.vocabulary is None:
            raise RuntimeError("NgramVectorizer.transform before fit")
        values, columns, indptr = [], [], [0]
        for text in texts:
            row = collections.Counter(self.vocabulary[g] for g in ngrams(text, self.n_max) if g in self.vocabulary)
            columns.extend(sorted(row))
            values.extend(row[c] for c in sorted(row))
            indptr.append(len(columns))
        x = SparseRows(np.array(values, dtype=np.float64), np.array(columns, dtype=np.int64),
                       np.array(indptr, dtype=np.int64), len(self.vocabulary))
        if self.tfidf:
            x.values *= self.idf[x.columns]
            rows = x.row_ids()
            x.values /= np.sqrt(np.bincount(rows, weights=x.values ** 2, minlength=len(x)))[rows]  # unit rows
        return x


# ------------------------------------------------------------ the sparse linear map
def _on_device(x, dtype):
    """The nonzeros of x as device arrays: values (nnz,), columns (nnz,), row of each (nnz,)."""
    return to_device(x.values, dtype), to_device(x.columns), to_device(x.row_ids())


def _transpose_product(values, columns, rows, g, n_columns):
    """X^T G: out[v] = sum over nonzeros k at column v of values[k] * G[rows[k]].  G: (N, C) -> (V, C)."""
    out = xp.zeros((n_columns, g.shape[1]), dtype=g.dtype)
    scatter_add(out, columns, values[:, None] * g[rows])
    return out


def sparse_linear_forward(x, w, b):
    """scores[n] = sum_k values[k] * W[columns[k]] + b over row n's nonzeros.  x: N rows, w: (V, C) -> (N, C)."""
    values, columns, rows = _on_device(x, w.dtype)
    scores = xp.zeros((len(x), w.shape[1]), dtype=w.dtype)
    scatter_add(scores, rows, values[:, None] * w[columns])  # (nnz, C) summed per row
    return scores + b, (values, columns, rows, w)


def sparse_linear_backward(dscores, cache):
    """dW = X^T dscores; db = sum_n dscores[n]; dvalues[k] = W[columns[k]] . dscores[rows[k]]."""
    values, columns, rows, w = cache
    dw = _transpose_product(values, columns, rows, dscores, w.shape[0])
    dvalues = (w[columns] * dscores[rows]).sum(axis=1)
    return dvalues, dw, dscores.sum(axis=0)


def class_feature_counts(x, labels, n_classes):
    """counts[v, c] = total weight of feature v over the rows labelled c: X^T Y with Y one-hot."""
    onehot = xp.zeros((len(x), n_classes), dtype=xp.float64)
    onehot[xp.arange(len(x)), to_device(labels)] = 1.0
    values, columns, rows = _on_device(x, xp.float64)
    return _transpose_product(values, columns, rows, onehot, x.n_columns)


class _LinearClassifier:
    """predict / predict_proba shared by both models: argmax of the scores (ties go to the lowest class)."""

    def scores(self, x):
        raise NotImplementedError

    def predict_proba(self, x):
        """P(c | x) = softmax over classes of the scores: (N, C) on the host."""
        probabilities, _ = softmax_forward(to_device(self.scores(x)))
        return to_host(probabilities)

    def predict(self, x):
        return self.scores(x).argmax(axis=1)


# ------------------------------------------------------------ naive Bayes
class MultinomialNB(_LinearClassifier):
    """P(c | x) proportional to P(c) prod_v P(v | c)^x_v, with
    P(v | c) = (count(v, c) + alpha) / (sum_v' count(v', c) + alpha V) and P(c) = N_c / N."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, x, labels, n_classes=None):
        labels = np.asarray(labels)
        n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
        counts = to_host(class_feature_counts(x, labels, n_classes)) + self.alpha  # (V, C)
        self.log_likelihood = np.log(counts) - np.log(counts.sum(axis=0, keepdims=True))
        class_sizes = np.bincount(labels, minlength=n_classes)
        with np.errstate(divide="ignore"):  # a class absent from training gets log P(c) = -inf
            self.log_prior = np.log(class_sizes / len(labels))
        return self

    def scores(self, x):
        """log P(c) + sum_v x_v log P(v | c): the joint log-probability up to a constant."""
        out, _ = sparse_linear_forward(x, to_device(self.log_likelihood), to_device(self.log_prior))
        return to_host(out)


# ------------------------------------------------------------ softmax regression
class SparseLinear(Module):
    """The module form of sparse_linear_*: W (V, C) and b (C,), zero-initialised (the loss is convex)."""

    def __init__(self, n_features, n_classes, dtype="float32"):
        self.weight = Parameter(xp.zeros((n_features, n_classes), dtype=dtype))
        self.bias = Parameter(xp.zeros(n_classes, dtype=dtype))

    def forward(self, x):  # N sparse rows -> (N, C)
        out, self.cache = sparse_linear_forward(x, self.weight.data, self.bias.data)
        return out

    def backward(self, dscores):
        """Accumulates dW, db; returns the gradient of the input's values, (nnz,)."""
        dvalues, dw, db = sparse_linear_backward(dscores, self.cache)
        self.weight.accumulate(dw)
        self.bias.accumulate(db)
        return dvalues


class SoftmaxRegression(_LinearClassifier):
    """Multinomial logistic regression: scores = x W + b through a SparseLinear, W and b learned by
    minimising mean_n -log softmax(x_n W + b)[y_n] (tasks.bow.fit_softmax_regression)."""

    def __init__(self, n_features, n_classes, dtype="float32"):
        self.model = SparseLinear(n_features, n_classes, dtype)

    def scores(self, x):
        return to_host(self.model(x))
