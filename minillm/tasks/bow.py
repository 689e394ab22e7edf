"""Training and scoring the bag-of-n-grams baselines (models/bow.py) on a classification task."""

import time

from minillm.backend import host_rng, np, to_device, to_float
from minillm.data.labelled import classification_data
from minillm.models.bow import MultinomialNB, NgramVectorizer, SoftmaxRegression
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.training.optim import AdamW


def fit_softmax_regression(x, labels, n_classes=None, epochs=5, lr=0.02, batch_size=64, weight_decay=1e-4, seed=0):
    """A SoftmaxRegression fitted by mini-batch AdamW, whose decoupled weight decay on W plays the role
    of an L2 penalty; the loss of every step is kept in `.losses`."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    classifier = SoftmaxRegression(x.n_columns, n_classes)
    optimizer = AdamW(classifier.model, lr=lr, weight_decay=weight_decay)
    rng = host_rng(seed)
    classifier.losses = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            loss, cache = cross_entropy_forward(classifier.model(x.take(batch)), to_device(labels[batch]))
            classifier.model.backward(cross_entropy_backward(1.0, cache))
            optimizer.step()
            optimizer.zero_grad()
            classifier.losses.append(to_float(loss))
    return classifier


# ------------------------------------------------------------ command
def run(task, directory=None, min_count=1, dataset=None):
    """Fits naive Bayes (on counts) and softmax regression (on tf-idf); prints and returns the result rows."""
    splits, names, note = classification_data(task, dataset, directory)
    print(f"{task}: {note}; " + ", ".join(f"{s} {len(splits[s][0])}" for s in splits))
    results = []
    fitters = {"naive Bayes (alpha=1, counts)": (lambda x, y, k: MultinomialNB().fit(x, y, k), False),
               "softmax regression (AdamW, tf-idf)": (fit_softmax_regression, True)}
    for name, (fit, use_tfidf) in fitters.items():
        start = time.perf_counter()
        vectorizer = NgramVectorizer(n_max=2, min_count=min_count, tfidf=use_tfidf).fit(splits["train"][0])
        classifier = fit(vectorizer.transform(splits["train"][0]), splits["train"][1], len(names))
        seconds = time.perf_counter() - start
        row = {"model": name, "features": len(vectorizer.vocabulary), "train_seconds": round(seconds, 1)}
        for split in ("dev", "test"):
            if split in splits:
                gold = splits[split][1]
                pred = classifier.predict(vectorizer.transform(splits[split][0])).tolist()
                row[f"{split}_accuracy"] = metrics.accuracy(gold, pred)
                row[f"{split}_macro_f1"] = metrics.macro_f1(gold, pred, labels=range(len(names)))
        results.append(row)
        scores = "  ".join(f"{k} {100 * v:.2f}" for k, v in row.items() if k.endswith(("accuracy", "f1")))
        print(f"  {name:36s} {row['features']:>8d} n-grams  train {seconds:6.1f}s  {scores}")
    return results
