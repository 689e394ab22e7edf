"""SetFit (Tunstall et al. 2022): contrastive fine-tuning of a sentence encoder on K examples, then a
logistic-regression head on its embeddings; and the baseline without the first step.

1. Pairs. Every example i is paired with `pairs_per_example` partners drawn at random, half of them
   of its own label (target t = 1) and half of another (t = 0), so the pairs are balanced.
2. Contrastive fine-tuning. The whole encoder (all-MiniLM-L6-v2) is trained on the pairs with the
   cosine regression of nn/contrastive.py,

       L = 1/P sum_p (cos(m(x_p), m(x'_p)) - t_p)^2,       m(x) = masked mean of the last layer,

   each batch's 2B texts run through the encoder together, and the gradient flows back from L
   through the mean and the whole BertModel (its own backward) to the embedding table; AdamW with
   linear warmup and decay (training/optim.py).
3. The head: softmax regression on the tuned encoder's unit embeddings of the K-shot texts,
   L2-regularised as scikit-learn's LogisticRegression(C=1) (tasks/retrieval.py fit_linear_probe),
   predicts the evaluation texts.

frozen_logreg is step 3 alone on the pretrained encoder's embeddings: the baseline SetFit is
measured against. Both are methods of the few-shot runner (cli/fewshot.py): predict_fn(train_texts,
train_labels, test_texts, names, task, seed, encoder) -> predicted labels, encoder the runner's
tasks/sentence_embeddings.EmbeddingCache of the pretrained model.
"""

import copy
import dataclasses
import math

from tqdm import tqdm

from minillm.backend import host_rng, np, to_device, to_float, xp
from minillm.nn.contrastive import cosine_mse_backward, cosine_mse_forward
from minillm.nn.functional import masked_mean_backward, masked_mean_forward
from minillm.tasks.batching import pad_batch
from minillm.tasks.retrieval import fit_linear_probe, probe_predict
from minillm.tasks.sentence_embeddings import sentence_embeddings
from minillm.training.optim import AdamW, linear_lr

HEAD_C = 1.0  # the head's inverse regularisation strength, scikit-learn's default


@dataclasses.dataclass
class SetFitConfig:
    pairs_per_example: int = 20  # partners of each example, half of its label (SetFit's num_iterations = 10)
    max_pairs: int = 640  # at most this many pairs (a large K would otherwise cost K times more steps)
    batch_size: int = 16  # pairs a step
    learning_rate: float = 1e-4  # SetFit's 2e-5 is for MPNet; MiniLM's body gains more from 1e-4 (docs/RESULTS.md)
    warmup: float = 0.1  # fraction of the steps
    weight_decay: float = 0.01
    max_length: int = 64  # tokens of a training text


def sample_pairs(labels, pairs_per_example, seed, max_pairs=None):
    """(left, right, target) arrays of P pairs: each example i is `left` of pairs_per_example pairs, the
    first half with a partner of its own label (target 1.0, never i itself), the rest with a partner of
    another label (0.0); partners drawn uniformly with replacement by host_rng(seed). The pairs are then
    shuffled and the first max_pairs kept. Every class needs at least two examples and there must be
    at least two classes.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if len(present) < 2 or present.min() < 2:
        raise ValueError(f"SetFit's pairs need two or more classes of two or more examples each; got {counts}")
    rng = host_rng(seed)
    n_same = pairs_per_example // 2
    left, right, target = [], [], []
    for i, y in enumerate(labels):
        same = np.flatnonzero((labels == y) & (np.arange(len(labels)) != i))
        other = np.flatnonzero(labels != y)
        partners = [rng.choice(same, n_same), rng.choice(other, pairs_per_example - n_same)]
        for part, t in zip(partners, (1.0, 0.0)):
            left.extend([i] * len(part))
            right.extend(part.tolist())
            target.extend([t] * len(part))
    order = rng.permutation(len(left))[:max_pairs]
    return np.asarray(left)[order], np.asarray(right)[order], np.asarray(target)[order]


def pair_step(model, ids, mask, target):
    """One forward and backward of the pair loss; ids, mask: (2B, T), the B left texts then their B partners;
    target: (B,) on the host. Adds the gradients into the model's .grad and returns the loss (a float)."""
    seq, _ = model(ids, attention_mask=mask)  # (2B, T, C)
    mean, weights = masked_mean_forward(seq, mask)  # (2B, C)
    n = mean.shape[0] // 2
    loss, cache = cosine_mse_forward(mean[:n], mean[n:], to_device(target, mean.dtype))
    da, db = cosine_mse_backward(1.0, cache)  # (B, C) each
    model.backward(masked_mean_backward(xp.concatenate([da, db]), weights))
    return to_float(loss)


def contrastive_tune(model, tokenizer, texts, labels, config, seed, progress=False):
    """Fine-tune a BertModel in place on pairs of the labelled texts; returns the losses of the steps."""
    left, right, target = sample_pairs(labels, config.pairs_per_example, seed, config.max_pairs)
    encoded = [tokenizer.encode_plus(t, max_length=config.max_length, truncation=True).input_ids for t in texts]
    steps = math.ceil(len(left) / config.batch_size)
    optimizer = AdamW(model, config.learning_rate, weight_decay=config.weight_decay)
    model.train()
    losses = []
    for step in tqdm(range(steps), desc="setfit pairs", leave=False, disable=not progress):
        rows = slice(step * config.batch_size, (step + 1) * config.batch_size)
        ids, mask = pad_batch([encoded[i] for i in left[rows]] + [encoded[j] for j in right[rows]], tokenizer.pad_id)
        losses.append(pair_step(model, ids, mask, target[rows]))
        optimizer.step(linear_lr(step, config.learning_rate, 0.0, round(config.warmup * steps), steps))
        optimizer.zero_grad()
    model.eval()
    return losses


def logistic_head(train_x, train_labels, test_x, n_classes, seed):
    """Softmax regression with scikit-learn's default L2 (C = 1) fitted on unit embeddings: test predictions."""
    probe, _ = fit_linear_probe(train_x, train_labels, n_classes, steps=300, lr=0.1, l2=1.0 / (HEAD_C * len(train_x)),
                                anneal=True, seed=seed)
    return probe_predict(probe, test_x)


def frozen_logreg(train_texts, train_labels, test_texts, names, task, seed, encoder):
    """The few-shot runner's method "logreg": the head on the pretrained encoder's embeddings."""
    return logistic_head(encoder.embed(train_texts), train_labels, encoder.embed(test_texts), len(names), seed)


def setfit(train_texts, train_labels, test_texts, names, task, seed, encoder, config=None):
    """The few-shot runner's method "setfit": a copy of the encoder tuned on pairs, then the head."""
    config = config or SetFitConfig()
    model = copy.deepcopy(encoder.model)
    contrastive_tune(model, encoder.tokenizer, train_texts, train_labels, config, seed, encoder.progress)

    def embed(texts):
        return sentence_embeddings(model, encoder.tokenizer, texts, encoder.batch_size, encoder.max_length,
                                   encoder.progress)

    return logistic_head(embed(train_texts), train_labels, embed(test_texts), len(names), seed)
