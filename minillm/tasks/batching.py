"""Batches of labelled sequences: padding, grouping by length, epochs in a seeded order, prediction in batches."""

from tqdm import tqdm

from minillm.backend import host_rng, np, to_device, to_host
from minillm.nn.functional import softmax_forward


def pad_batch(sequences, pad_id):
    """Right-pad id lists to the longest: (ids (B, T), attention_mask (B, T)) as device arrays."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return to_device(ids), to_device(mask)


def length_batches(sequences, batch_size):
    """Lists of row indices, batch_size at a time in order of length, so each batch pads little."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def map_by_length(fn, sequences, batch_size, pad_id, per_token=False, progress=False):
    """Stack fn(ids, attention_mask) -> (B, ...) over all id lists, on the host, in the order given.

    Sequences are batched by length, so each batch is padded only a little.
    per_token: fn gives one row per position, (B, T, ...); each sequence's
    rows are cut to its own length and a list of (T_i, ...) arrays returned.
    """
    rows_out = [None] * len(sequences)
    for rows in tqdm(length_batches(sequences, batch_size), desc="predict", leave=False, disable=not progress):
        for i, row in zip(rows, to_host(fn(*pad_batch([sequences[i] for i in rows], pad_id)))):
            rows_out[i] = row[:len(sequences[i])] if per_token else row
    return rows_out if per_token else np.stack(rows_out)


def predict_probabilities(model, sequences, batch_size, pad_id, per_token=False, progress=False):
    """A classifier's class probabilities (N, K) on the host, in the order given;
    per_token: a token classifier's, one (T_i, K) array per sequence; progress: a bar over the batches."""
    model.eval()
    return map_by_length(lambda ids, mask: softmax_forward(model(ids, mask))[0], sequences, batch_size, pad_id,
                         per_token, progress)


def epoch_batches(lengths, batch_size, seed, epoch, group_by_length=True, batches_per_group=50):
    """The batches (arrays of example indices) of one epoch, in an order fixed by (seed, epoch).

    With group_by_length (as Hugging Face's Trainer offers), the shuffled
    examples are cut into groups of `batches_per_group` batches, each group is
    sorted by length and cut into batches, and the batches are shuffled: a
    batch holds texts of similar length, so padding to its longest wastes
    little compute, while every epoch still mixes the data differently.
    """
    rng = host_rng([seed, 2, epoch])
    order = rng.permutation(len(lengths))
    if not group_by_length:
        return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    lengths = np.asarray(lengths)
    group = batch_size * batches_per_group
    batches = []
    for g in range(0, len(order), group):
        members = order[g:g + group]
        members = members[np.argsort(lengths[members], kind="stable")]  # (<= group,) short to long
        batches += [members[k:k + batch_size] for k in range(0, len(members), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class EpochBatches:
    """batches(index) -> the example indices of training batch number `index`, walking the
    examples epoch after epoch, each epoch cut by epoch_batches (computed once per epoch)."""

    def __init__(self, lengths, batch_size, seed, group_by_length=True):
        self.lengths, self.batch_size, self.seed, self.group_by_length = list(lengths), batch_size, seed, group_by_length
        self.steps_per_epoch = -(-len(self.lengths) // batch_size)
        self.epoch = self.batches = None

    def __call__(self, index):
        epoch, k = divmod(index, self.steps_per_epoch)
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches = epoch_batches(self.lengths, self.batch_size, self.seed, epoch, self.group_by_length)
        return self.batches[k]
