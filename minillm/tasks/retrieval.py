"""What a shared embedding space is worth: cross-modal retrieval and linear probes.

Retrieval with class-level relevance: a candidate is relevant to a query when both show the same
digit (an image of a 7 and "the number seven"). recall@k is the fraction of queries with at least
one relevant candidate among their k most similar (cosine similarity of unit vectors), precision@k
the fraction of relevant candidates among those k.

A linear probe fits softmax regression, logits = e W^T + b, on frozen embeddings of the training
set and reports held-out accuracy: how much of the label a linear read-out finds in the embedding.
It minimises, full-batch with AdamW,

    J(W, b) = -(1/N) sum_n log softmax(e_n W^T + b)[y_n] + (l2 / 2) ||W||^2       (b not penalised)

l2 = 1 / (C N) is scikit-learn's LogisticRegression(C) written per example: its objective is
N times this one, so both have the same minimiser.
"""

from minillm.backend import default_rng, np, to_device, to_float, to_host
from minillm.nn.layers import Linear
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward, l2_penalty_backward, l2_penalty_forward
from minillm.tasks import metrics
from minillm.training.optim import AdamW, cosine_lr


def retrieval_scores(queries, query_labels, candidates, candidate_labels, ks=(1, 5), precision_k=10):
    """{"R@k": fraction of queries with a candidate of their label among their k nearest, for each k in ks;
    "P@precision_k": mean fraction of the precision_k nearest that have the query's label}.

    queries: (Q, D), candidates: (M, D) unit vectors (host arrays); labels: (Q,), (M,) ints. Recall is
    lenient when one class has many candidates (a caption finds some image of its digit); precision
    says how clean the whole top of the list is.
    """
    sims = queries @ candidates.T  # (Q, M)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :max(*ks, precision_k)]  # (Q, k) best first
    hit = np.asarray(candidate_labels)[order] == np.asarray(query_labels)[:, None]  # (Q, k)
    scores = {f"R@{k}": float(hit[:, :k].any(axis=1).mean()) for k in ks}
    scores[f"P@{precision_k}"] = float(hit[:, :precision_k].mean())
    return scores


def probe_objective(probe, x, y, l2=0.0):
    """J = mean cross-entropy + (l2 / 2) ||W||^2 of a Linear probe on device arrays x (N, D), y (N,);
    adds dJ/dW and dJ/db into the probe's .grad and returns J."""
    loss, cache = cross_entropy_forward(probe(x), y)
    penalty, penalty_cache = l2_penalty_forward(probe.weight.data, l2)
    probe.backward(cross_entropy_backward(1.0, cache))
    probe.weight.accumulate(l2_penalty_backward(1.0, penalty_cache))
    return loss + penalty


def fit_linear_probe(train_x, train_y, n_classes, steps=300, lr=0.05, l2=0.0, anneal=False, seed=0):
    """(a Linear probe fitted on host arrays train_x (N, D), train_y (N,), its final objective J).

    Full-batch AdamW from zero weights for `steps` steps at lr, or with anneal a cosine decay from lr
    to 0, which settles on the minimum of the (convex) objective instead of circling it.
    """
    probe = Linear(train_x.shape[1], n_classes, default_rng(seed), std=0.0, dtype=train_x.dtype.name)
    optimizer = AdamW(probe, lr, weight_decay=0.0)
    x, y = to_device(train_x), to_device(np.asarray(train_y))
    for it in range(steps):
        objective = probe_objective(probe, x, y, l2)
        optimizer.step(cosine_lr(it, lr, 0.0, 0, steps) if anneal else lr)
        optimizer.zero_grad()
    return probe, to_float(objective)


def probe_predict(probe, x):
    """The probe's class (argmax of its logits) for each row of the host array x: a list of ints."""
    return to_host(probe(to_device(x.astype(probe.weight.data.dtype)))).argmax(axis=1).tolist()


def linear_probe(train_x, train_y, test_x, test_y, n_classes=10, steps=300, lr=0.05, seed=0):
    """Held-out accuracy of softmax regression fitted on frozen embeddings (host arrays)."""
    probe, objective = fit_linear_probe(train_x.astype(np.float32), train_y, n_classes, steps, lr, seed=seed)
    pred = probe_predict(probe, test_x)
    return {"accuracy": metrics.accuracy(list(test_y), pred), "train_loss": objective}
