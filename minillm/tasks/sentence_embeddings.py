"""Sentence embeddings from a BERT encoder, as sentence-transformers makes all-MiniLM-L6-v2's.

    u = sum_t m_t h_t / sum_t m_t        mean of the last layer over real tokens (m: attention mask)
    e = u / max(||u||_2, 1e-12)          unit length, so cos(a, b) = e_a . e_b
"""

from minillm.backend import np
from minillm.nn.functional import masked_mean_forward
from minillm.tasks.batching import map_by_length

NORM_EPS = 1e-12  # torch.nn.functional.normalize's floor, which sentence-transformers uses


def mean_pooled(model, encoded, batch_size, pad_id, progress=False):
    """u (N, C) on the host: a BertModel's last layer averaged over each id list's real tokens, in order.

    Lists are batched by length so padding stays small, and padding is masked out of both the attention
    and the mean; progress: a bar over the batches.
    """
    model.eval()

    def embed(ids, mask):  # (B, T), (B, T) -> (B, C)
        seq, _ = model(ids, attention_mask=mask)
        return masked_mean_forward(seq, mask)[0]

    return map_by_length(embed, encoded, batch_size, pad_id, progress=progress)


def unit_rows(u):
    """e = u / max(||u||_2, 1e-12), row by row, on the host: (N, C) -> (N, C)."""
    return u / np.maximum(np.sqrt((u * u).sum(axis=-1, keepdims=True)), NORM_EPS)


def sentence_embeddings(model, tokenizer, texts, batch_size=32, max_length=256, progress=False):
    """Mean-pooled, L2-normalised embeddings (N, C) on the host of a BertModel, in the order given.

    `[CLS] text [SEP]` is cut to max_length tokens (all-MiniLM-L6-v2 was trained with 256).
    """
    encoded = [tokenizer.encode_plus(t, max_length=max_length, truncation=True).input_ids for t in texts]
    return unit_rows(mean_pooled(model, encoded, batch_size, tokenizer.pad_id, progress))


class EmbeddingCache:
    """A frozen encoder's sentence embeddings, each text embedded once: embed(texts) -> (N, C) on the host.

    Few-shot runs score many draws against one evaluation set; the set's embeddings, and every drawn
    text's, are computed the first time they are asked for and kept in memory, keyed by text.
    """

    def __init__(self, model, tokenizer, batch_size=32, max_length=128, progress=False):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_length, self.progress = batch_size, max_length, progress
        self.rows = {}

    def embed(self, texts):
        missing = list(dict.fromkeys(t for t in texts if t not in self.rows))
        if missing:
            new = sentence_embeddings(self.model, self.tokenizer, missing, self.batch_size, self.max_length,
                                      self.progress)
            self.rows.update(zip(missing, new))
        return np.stack([self.rows[t] for t in texts])
