"""What a shared embedding space is worth: cross-modal retrieval and linear probes.

Retrieval with class-level relevance: a candidate is relevant to a query when both show the same
digit (an image of a 7 and "the number seven"). recall@k is the fraction of queries with at least
one relevant candidate among their k most similar (cosine similarity of unit vectors), precision@k
the fraction of relevant candidates among those k.

A linear probe fits softmax regression, logits = e W^T + b, on frozen embeddings of the training
set (full-batch AdamW on the mean cross-entropy) and reports held-out accuracy: how much of the
label a linear read-out finds in the embedding.
"""

from minillm.backend import default_rng, np, to_device, to_float, to_host
from minillm.nn.layers import Linear
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tasks import metrics
from minillm.training.optim import AdamW


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


def linear_probe(train_x, train_y, test_x, test_y, n_classes=10, steps=300, lr=0.05, seed=0):
    """Held-out accuracy of softmax regression fitted on frozen embeddings (host arrays)."""
    probe = Linear(train_x.shape[1], n_classes, default_rng(seed), std=0.0)
    optimizer = AdamW(probe, lr, weight_decay=0.0)
    x, y = to_device(train_x.astype(np.float32)), to_device(np.asarray(train_y))
    for _ in range(steps):
        loss, cache = cross_entropy_forward(probe(x), y)
        probe.backward(cross_entropy_backward(1.0, cache))
        optimizer.step(lr)
        optimizer.zero_grad()
    pred = to_host(probe(to_device(test_x.astype(np.float32)))).argmax(axis=1)
    return {"accuracy": metrics.accuracy(list(test_y), pred.tolist()), "train_loss": to_float(loss)}
