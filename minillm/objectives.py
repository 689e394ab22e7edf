"""Pretraining objectives: what the model is asked to predict, and its loss.

Autoregressive (GPT). Predict every next token from the ones before it,

    L_AR = -(1 / T) sum_t log p(x_{t+1} | x_1 .. x_t)

so the targets are the inputs shifted left by one, and the causal mask keeps
position t from seeing x_{t+1}.

Masked language modelling (BERT). Choose 15% of the ordinary tokens of a
sequence (never [CLS], [SEP] or [PAD]); of those, 80% become [MASK], 10% a
random ordinary token and 10% stay as they are. Only the chosen positions M
are scored:

    L_MLM = -(1 / |M|) sum_{i in M} log p(x_i | x with M corrupted)

Next-sentence prediction (BERT). Segment A is a run of sentences of a
document; B is, half the time, the sentences that follow A, else a run from
another document. From the pooled [CLS] vector:

    L_NSP = -(1 / N) sum_n log p(is_next_n | A_n, B_n),    L = L_MLM + L_NSP

Permutation language modelling (XLNet). Sample a factorization order z, a
permutation of the T real (non-padding) positions, and predict tokens
autoregressively in that order; only the last T / K of the order are
predicted (partial prediction: they have the most context):

    L_PLM = -(1 / |P|) sum_{t in P} log p(x_{z_t} | x_{z_1} .. x_{z_{t-1}}),   P = the last T / K ranks

Two masks come from the ranks r(i) (the step of z at which position i comes):
the content stream at i sees j iff r(j) <= r(i) (itself included); the
query stream at i sees j iff r(j) < r(i), never itself, so it knows where
its target is (its position) but not what it is.

Data-side functions run on the host (`np`) with a generator the caller seeds.
"""

from collections import namedtuple

from minillm.backend import np, to_device, to_host, xp
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward

IGNORE_INDEX = -100  # the label of positions that are not scored
IS_NEXT, IS_RANDOM = 0, 1  # NSP labels, as Hugging Face: 0 means B really follows A


# ---------------------------------------------------------------- autoregressive language modelling
def ar_blocks(ids, batch_size, block_size, rng):
    """B random windows of a token stream -> inputs x and targets y = x shifted by one.

    ids: 1-D host array; returns device arrays x, y, each (B, T).
    """
    if len(ids) <= block_size:
        raise ValueError(f"token stream of {len(ids)} ids is too short for block_size {block_size}")
    starts = rng.integers(0, len(ids) - block_size, batch_size)  # (B,)
    windows = ids[starts[:, None] + np.arange(block_size + 1)]  # (B, T + 1)
    return to_device(windows[:, :-1].astype(np.int64)), to_device(windows[:, 1:].astype(np.int64))


def ar_loss(logits, targets, ignore_index=IGNORE_INDEX):
    """L_AR for logits (B, T, V) and targets (B, T); returns (loss, cache for ar_loss_backward)."""
    B, T, V = logits.shape
    loss, cache = cross_entropy_forward(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index)
    return loss, (cache, logits.shape)


def ar_loss_backward(dloss, cache):
    """dL/dlogits (B, T, V)."""
    ce_cache, shape = cache
    return cross_entropy_backward(dloss, ce_cache).reshape(shape)


# ---------------------------------------------------------------- masked language modelling
def _choose_mlm_positions(candidate, word_start, fraction, rng):
    """Indices to predict in one sequence: round(fraction * #candidates) of them, at least one.

    Candidates are grouped into words (a new word where word_start is True, or
    after a non-candidate); words are visited in random order and taken whole
    while they fit the budget, as BERT's create_pretraining_data does.
    """
    idx = np.flatnonzero(candidate)
    if len(idx) == 0:
        return idx
    budget = max(1, int(round(len(idx) * fraction)))
    starts = np.ones(len(idx), dtype=bool)
    if word_start is not None:
        starts[1:] = word_start[idx[1:]] | (np.diff(idx) > 1)  # a gap (a special token) ends a word
    words = np.split(idx, np.flatnonzero(starts)[1:])
    chosen = []
    for w in rng.permutation(len(words)):
        if len(chosen) + len(words[w]) <= budget:
            chosen.extend(words[w])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def mask_tokens(input_ids, special_ids, mask_id, vocab_size, rng, mlm_probability=0.15,
                word_starts=None):
    """BERT's MLM corruption of a batch: -> (corrupted ids (B, T), labels (B, T)).

    input_ids: (B, T) ints; special_ids: ids never chosen nor used as random
    replacements ([CLS], [SEP], [PAD], [MASK], [UNK], ...); word_starts: (B, T)
    bools for whole-word masking (False on WordPiece continuations `##..`), so a
    word's pieces are chosen together. labels hold the original id at chosen
    positions and IGNORE_INDEX elsewhere. The 80/10/10 decision is per token.
    """
    input_ids = np.asarray(input_ids)
    special = np.isin(input_ids, np.asarray(list(special_ids)))
    ordinary = np.setdiff1d(np.arange(vocab_size), np.asarray(list(special_ids)))
    ids = input_ids.copy()
    labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int64)
    for b in range(ids.shape[0]):
        ws = None if word_starts is None else np.asarray(word_starts[b], dtype=bool)
        pos = _choose_mlm_positions(~special[b], ws, mlm_probability, rng)
        labels[b, pos] = input_ids[b, pos]
        u = rng.random(len(pos))
        ids[b, pos[u < 0.8]] = mask_id
        swap = pos[(u >= 0.8) & (u < 0.9)]
        ids[b, swap] = rng.choice(ordinary, size=len(swap))
    return ids, labels


# ---------------------------------------------------------------- next-sentence prediction
SegmentPair = namedtuple("SegmentPair", "tokens_a tokens_b is_random_next doc_a doc_b")


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Shorten the longer list, one token at a time from its front or back (at random), in place."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        del longer[0 if rng.random() < 0.5 else -1]  # both ends, so no end is always intact


def _other_document(n_docs, doc_index, rng):
    """A uniformly random document index other than doc_index."""
    j = int(rng.integers(n_docs - 1))
    return j + (j >= doc_index)


def document_pairs(documents, doc_index, max_seq_length, rng, short_seq_prob=0.1):
    """NSP pairs from one document, as BERT's create_instances_from_document.

    Sentences are gathered until they reach a target length (max_seq_length - 3,
    room for [CLS] A [SEP] B [SEP]; with probability short_seq_prob a random
    shorter target, so the model also sees short inputs). A is the first
    1..k-1 of the k gathered sentences; B is the rest, or (always when k = 1,
    else with probability 1/2) a run of sentences from another document, whose
    unused sentences of this document are then gathered again.
    """
    document = documents[doc_index]
    max_num_tokens = max_seq_length - 3
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_num_tokens + 1))
    pairs, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            if len(chunk) == 1 or rng.random() < 0.5:
                doc_b = _other_document(len(documents), doc_index, rng)
                other = documents[doc_b]
                tokens_b = []
                for sentence in other[int(rng.integers(len(other))):]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end  # the unused sentences start the next chunk
                is_random = True
            else:
                doc_b = doc_index
                tokens_b = [t for s in chunk[a_end:] for t in s]
                is_random = False
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            pairs.append(SegmentPair(tokens_a, tokens_b, is_random, doc_index, doc_b))
            chunk, length = [], 0
        i += 1
    return pairs


def nsp_pairs(documents, max_seq_length, rng, short_seq_prob=0.1):
    """NSP pairs from every document, in document order (shuffle them for training).

    documents: a list of documents, each a list of sentences, each a list of
    token ids. Empty sentences are dropped; at least two non-empty documents
    are needed, so that a random B never comes from A's document.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for [CLS] A [SEP] B [SEP]")
    documents = [[list(s) for s in doc if len(s)] for doc in documents]
    documents = [doc for doc in documents if doc]
    if len(documents) < 2:
        raise ValueError(f"NSP needs at least 2 non-empty documents, got {len(documents)}")
    pairs = []
    for d in range(len(documents)):
        pairs.extend(document_pairs(documents, d, max_seq_length, rng, short_seq_prob))
    return pairs


def pack_pairs(pairs, max_seq_length, cls_id, sep_id, pad_id):
    """[CLS] A [SEP] B [SEP], padded: -> dict of int64 arrays ready for BertForPreTraining.

    input_ids, token_type_ids (0 for [CLS] A [SEP], 1 for B [SEP]) and
    attention_mask, each (N, max_seq_length); next_sentence_label (N,).
    """
    n = len(pairs)
    batch = {"input_ids": np.full((n, max_seq_length), pad_id, dtype=np.int64),
             "token_type_ids": np.zeros((n, max_seq_length), dtype=np.int64),
             "attention_mask": np.zeros((n, max_seq_length), dtype=np.int64),
             "next_sentence_label": np.array([IS_RANDOM if p.is_random_next else IS_NEXT for p in pairs],
                                             dtype=np.int64)}
    for r, p in enumerate(pairs):
        tokens = [cls_id, *p.tokens_a, sep_id, *p.tokens_b, sep_id]
        if len(tokens) > max_seq_length:
            raise ValueError(f"pair {r} has {len(tokens)} tokens, more than max_seq_length={max_seq_length}")
        batch["input_ids"][r, :len(tokens)] = tokens
        batch["token_type_ids"][r, len(p.tokens_a) + 2:len(tokens)] = 1
        batch["attention_mask"][r, :len(tokens)] = 1
    return batch


# ---------------------------------------------------------------- the BERT loss
def mlm_nsp_loss(model, batch, backward=True, scale=1.0):
    """L = L_MLM (+ L_NSP when the batch has next_sentence_label), and the gradients.

    batch: input_ids, token_type_ids, attention_mask, labels (MLM, IGNORE_INDEX
    where not scored) and optionally next_sentence_label. Only the scored
    positions go through the MLM head. With backward, every parameter's .grad
    receives dL/dparam (added, so zero_grad first). Returns (loss, metrics).
    """
    labels = np.asarray(to_host(batch["labels"]))  # (B, T)
    scored = labels != IGNORE_INDEX
    targets = xp.asarray(labels[scored])  # (N,), in the row-major order the model returns its rows
    scores, nsp_logits = model(batch["input_ids"], batch.get("token_type_ids"), batch.get("attention_mask"),
                               mlm_mask=scored)  # (N, V), (B, 2)
    mlm_loss, mlm_cache = cross_entropy_forward(scores, targets)
    metrics = {"mlm_loss": float(mlm_loss), "mlm_correct": int((scores.argmax(-1) == targets).sum()),
               "mlm_count": len(targets)}
    loss, dnsp = mlm_loss, None
    if "next_sentence_label" in batch:
        nsp_targets = xp.asarray(batch["next_sentence_label"])
        nsp_loss, nsp_cache = cross_entropy_forward(nsp_logits, nsp_targets)
        loss = loss + nsp_loss
        metrics.update(nsp_loss=float(nsp_loss), nsp_correct=int((nsp_logits.argmax(-1) == nsp_targets).sum()),
                       nsp_count=len(nsp_targets))
    if backward:
        # dL/dL_MLM = dL/dL_NSP = 1: the two losses are simply added
        if "next_sentence_label" in batch:
            dnsp = cross_entropy_backward(scale, nsp_cache)
        model.backward(cross_entropy_backward(scale, mlm_cache), dnsp)
    return float(loss), metrics


# ---------------------------------------------------------------- permutation language modelling
def plm_masks(ranks, real):
    """XLNet's two attention masks from the factorization ranks: -> (content, query), each (B, T, T).

    ranks: (B, T) ints, the step of the order at which each position comes;
    real: (B, T) bools, False on padding, which no position ever sees.
    content[b, i, j] = r(j) <= r(i); query[b, i, j] = r(j) < r(i).
    """
    before = ranks[:, None, :] < ranks[:, :, None]  # (B, T, T): [b, i, j] = r(j) < r(i)
    visible = real[:, None, :]  # (B, 1, T): keys that are real tokens
    content = (before | np.eye(ranks.shape[1], dtype=bool)) & visible
    return content, before & visible


def permutation_lm_batch(input_ids, rng, num_predict=None, predict_ratio=1 / 6, pad_id=None):
    """One factorization order per sequence, its masks and its targets (host arrays).

    input_ids: (B, T) ints; positions holding pad_id are left out of the order.
    Each sequence predicts its last num_predict ranks (default
    round(predict_ratio * n), n its real length), at most n - 1 so that every
    predicted position has at least one token to see. Returns a dict:
    input_ids, content_mask and query_mask (B, T, T) bools, labels (B, T)
    (the token where predicted, IGNORE_INDEX elsewhere) and perm_ranks (B, T).
    """
    input_ids = np.asarray(input_ids)
    B, T = input_ids.shape
    real = np.ones((B, T), dtype=bool) if pad_id is None else input_ids != pad_id
    ranks = np.full((B, T), T, dtype=np.int64)  # padding ranks after every real token
    labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    for b in range(B):
        positions = np.flatnonzero(real[b])
        n = len(positions)
        if n < 2:
            raise ValueError(f"sequence {b} has {n} real tokens; permutation LM needs at least 2")
        order = positions[rng.permutation(n)]  # z: order[t] is the position predicted at step t
        ranks[b, order] = np.arange(n)
        k = num_predict if num_predict is not None else int(round(predict_ratio * n))
        predicted = order[n - min(max(k, 1), n - 1):]
        labels[b, predicted] = input_ids[b, predicted]
    content, query = plm_masks(ranks, real)
    return {"input_ids": input_ids.astype(np.int64), "content_mask": content, "query_mask": query,
            "labels": labels, "perm_ranks": ranks}


def plm_loss(model, batch, backward=True, scale=1.0):
    """L_PLM over the predicted positions, and (with backward) every parameter's gradient.

    batch: a permutation_lm_batch (host or device arrays). Only the predicted
    positions go through the LM head. Returns (loss, metrics).
    """
    labels = np.asarray(to_host(batch["labels"]))  # (B, T)
    predicted = labels != IGNORE_INDEX
    targets = xp.asarray(labels[predicted])  # (N,), in the row-major order the model returns its rows
    logits = model(xp.asarray(batch["input_ids"]), xp.asarray(batch["content_mask"]),
                   xp.asarray(batch["query_mask"]), target_mask=predicted)  # (N, V)
    loss, cache = cross_entropy_forward(logits, targets)
    if backward:
        model.backward(cross_entropy_backward(scale, cache))
    return float(loss), {"plm_loss": float(loss), "plm_count": len(targets),
                         "plm_correct": int((logits.argmax(-1) == targets).sum())}
