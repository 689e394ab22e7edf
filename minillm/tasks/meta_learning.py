"""Meta-learning a sentence encoder in episodes, and N-way K-shot evaluation on unseen classes.

A training step draws one episode (data/episodes.py) from the meta-training classes, embeds its
support and query texts with the encoder (mean of the last layer over real tokens, as
sentence-transformers pools all-MiniLM-L6-v2, not normalised), scores the queries and backpropagates
the queries' cross-entropy through the scores into the encoder:

    protonet      z = -||q - c_n||^2 to each class mean c_n of the support embeddings (Snell et al. 2017)
    proto-maml    z = q W'^T + b', the head W_0 = 2C, b_0 = -||c||^2 adapted by a few SGD steps on the
                  support set, first-order (Triantafillou et al. 2020; nn/prototypical.py)

Only the head adapts in the inner loop (as ANIL, Raghu et al. 2020): adapting the whole encoder on
every episode would cost a step per inner step on this CPU, and at test time a thousand episodes of it.

Evaluation embeds the unseen classes' texts once and draws the test episodes over those embeddings:
accuracy per episode, the mean, and its 95% confidence interval 1.96 sd / sqrt(episodes). The same
embeddings serve the baselines without training: the nearest prototype by cosine similarity and the
nearest single support example (1-NN).
"""

from minillm.backend import np, to_device, to_float, to_host, xp
from minillm.data.episodes import EpisodeSampler
from minillm.nn.functional import masked_mean_backward, masked_mean_forward
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.nn.prototypical import (proto_maml_logits_backward, proto_maml_logits_forward,
                                     prototype_logits_backward, prototype_logits_forward)
from minillm.tasks.batching import pad_batch
from minillm.tasks.sentence_embeddings import mean_pooled, unit_rows
from minillm.training.task import Task

METHODS = ("protonet", "proto-maml")


class EpisodeScorer:
    """A method's scores of an episode's queries: forward(support (N, K, D), query (M, D)) -> (M, N)
    logits, backward(dz) -> (dsupport, dquery)."""

    def __init__(self, method, inner_steps=5, inner_lr=0.1):
        if method not in METHODS:
            raise ValueError(f"unknown meta-learning method {method!r}; choose {', '.join(METHODS)}")
        self.method, self.inner_steps, self.inner_lr = method, inner_steps, inner_lr

    def forward(self, support, query):
        if self.method == "protonet":
            z, self.cache = prototype_logits_forward(support, query)
        else:
            z, self.cache = proto_maml_logits_forward(support, query, self.inner_steps, self.inner_lr)
        return z

    def backward(self, dz):
        backward = prototype_logits_backward if self.method == "protonet" else proto_maml_logits_backward
        return backward(dz, self.cache)


def classify_episode(method, support, query, scorer=None):
    """Predicted class rows (M,) for queries (M, D) given support (N, K, D), all host arrays.

    method: "scorer" (the trained method's own scores), "prototype-cosine" (nearest class mean of
    the unit embeddings) or "1-nn" (the class of the most cosine-similar support example)."""
    if method == "scorer":
        return to_host(scorer.forward(to_device(support), to_device(query))).argmax(axis=1)
    if method == "prototype-cosine":
        return (unit_rows(query) @ unit_rows(unit_rows(support).mean(axis=1)).T).argmax(axis=1)
    if method == "1-nn":
        n, k, d = support.shape
        return (unit_rows(query) @ unit_rows(support).reshape(n * k, d).T).argmax(axis=1) // k
    raise ValueError(f"unknown episode classifier {method!r}")


def episode_accuracies(embeddings, sampler, n_episodes, method, scorer=None):
    """Accuracy on the queries of episodes 0..n_episodes-1 of sampler, over embeddings (E, D): (n_episodes,)."""
    out = np.empty(n_episodes)
    for i in range(n_episodes):
        _, support, query = sampler.episode(i)  # (N, K), (N, Q) example rows
        predicted = classify_episode(method, embeddings[support], embeddings[query.reshape(-1)], scorer)
        out[i] = (predicted == np.repeat(np.arange(query.shape[0]), query.shape[1])).mean()
    return out


def mean_ci95(accuracies):
    """(mean, half-width of the 95% confidence interval of the mean) of per-episode accuracies."""
    return float(accuracies.mean()), float(1.96 * accuracies.std(ddof=1) / np.sqrt(len(accuracies)))


class MetaLearningTask(Task):
    """Episodic training of a BertModel (the Trainer's model) with a method of METHODS.

    train: (encoded texts, labels, groups) of the meta-training classes; held_out: the same of the
    classes evaluate() scores, on `eval_episodes` episodes (seeded apart from training's).
    train_layers: how many of the top encoder layers train (0: all, embeddings included).
    """

    def __init__(self, model, scorer, train, held_out, n_way, k_shot, n_query, pad_id, seed=1337,
                 eval_episodes=200, eval_way=None, batch_size=64, grad_accum=1, train_layers=0):
        self.model, self.scorer, self.pad_id, self.batch_size = model, scorer, pad_id, batch_size
        self.grad_accum = grad_accum
        layers = list(model.encoder.layer)
        self.trained = layers if train_layers in (0, len(layers)) else layers[-train_layers:]
        if len(self.trained) < len(layers):  # the rest, embeddings and pooler included, stay as they are
            model.requires_grad_(False)
            for layer in self.trained:
                layer.requires_grad_(True)
        self.encoded, labels, groups = train
        self.sampler = EpisodeSampler(labels, groups, n_way, k_shot, n_query, seed)
        self.held_encoded, held_labels, held_groups = held_out
        self.held_sampler = EpisodeSampler(held_labels, held_groups, eval_way or n_way, k_shot, n_query, seed + 1)
        self.eval_episodes = eval_episodes
        self.tokens_per_step = n_way * (k_shot + n_query) * 16  # about: SNIPS's texts are ~10 tokens, news ~50

    def train_step(self, it, micro, scale):
        _, support, query = self.sampler.episode(it * self.grad_accum + micro)  # (N, K), (N, Q)
        n, k = support.shape
        rows = np.concatenate([support.reshape(-1), query.reshape(-1)])
        ids, mask = pad_batch([self.encoded[r] for r in rows], self.pad_id)  # (B, T)
        seq, _ = self.model(ids, attention_mask=mask)  # (B, T, C)
        e, weights = masked_mean_forward(seq, mask)  # (B, C)
        z = self.scorer.forward(e[:n * k].reshape(n, k, -1), e[n * k:])  # (N Q, N)
        targets = to_device(np.repeat(np.arange(n), query.shape[1]))
        loss, cache = cross_entropy_forward(z, targets)
        dsupport, dquery = self.scorer.backward(cross_entropy_backward(scale, cache))
        de = xp.concatenate([dsupport.reshape(n * k, -1), dquery])  # (B, C)
        dh = masked_mean_backward(de, weights)  # (B, T, C)
        if len(self.trained) == len(self.model.encoder.layer):
            self.model.backward(dh)
        else:
            for layer in reversed(self.trained):  # the frozen layers below need no gradient at all
                dh = layer.backward(dh)
        return to_float(loss)

    def evaluate(self):
        """Mean accuracy of the method over `eval_episodes` episodes of the held-out classes."""
        embeddings = mean_pooled(self.model, self.held_encoded, self.batch_size, self.pad_id)
        scores = episode_accuracies(embeddings, self.held_sampler, self.eval_episodes, "scorer", self.scorer)
        return {"val_episode_accuracy": float(scores.mean())}
