"""BERT pretraining data from IMDB reviews: text -> sentences -> ids -> MLM + NSP batches.

A review is a document. Sentences are split by one simple rule: `<br />` tags
end a sentence, and so does ., ! or ? (optionally followed by one closing
quote or bracket) followed by whitespace. Abbreviations such as "Mr. Smith"
are split too; NSP only needs sentence-like segments, not linguistic truth.

Every epoch draws new pairs and new masks from a generator seeded by
(seed, epoch), so runs repeat exactly and a resumed run sees the same data.
"""

import re
from collections import namedtuple

from minillm.backend import np
from minillm.datasets import imdb
from minillm.objectives import mask_tokens, nsp_pairs, pack_pairs

SpecialTokens = namedtuple("SpecialTokens", "pad unk cls sep mask")  # the ids of BERT's five specials

_SENTENCE_END = re.compile(r"\s*<br\s*/?>\s*|(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")


def split_sentences(text):
    """The non-empty sentences of a review, by the rule in the module docstring."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def review_documents(texts, encode):
    """Each text as a document: a list of sentences, each a list of token ids (empty ones dropped)."""
    documents = []
    for text in texts:
        doc = [ids for ids in (list(encode(s)) for s in split_sentences(text)) if ids]
        if doc:
            documents.append(doc)
    return documents


def imdb_documents(split, encode, directory=None, limit=None):
    """IMDB reviews of "train" or "test" (the first `limit` of them) as documents of token ids."""
    reviews = imdb(split, directory)
    if limit is not None:  # every k-th review: imdb() lists the positives, then the negatives
        reviews = reviews[::max(1, len(reviews) // limit)][:limit]
    return review_documents((text for text, _ in reviews), encode)


def pretraining_batches(documents, batch_size, max_seq_length, special, vocab_size, seed, epoch=0,
                        nsp=True, mlm_probability=0.15, short_seq_prob=0.1, is_continuation=None):
    """One epoch of BERT batches: dicts of int64 arrays for `objectives.mlm_nsp_loss`.

    Keys: input_ids, token_type_ids, attention_mask, labels (MLM) and, with nsp,
    next_sentence_label; every batch has batch_size rows (the last partial one
    is dropped). special: SpecialTokens. is_continuation: bool per vocabulary id
    (True for WordPiece `##` pieces) to mask whole words.
    """
    rng = np.random.default_rng([seed, epoch])
    pairs = nsp_pairs(documents, max_seq_length, rng, short_seq_prob)
    order = rng.permutation(len(pairs))
    specials = tuple(special)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        batch = pack_pairs([pairs[i] for i in order[start:start + batch_size]], max_seq_length,
                           special.cls, special.sep, special.pad)
        starts = None if is_continuation is None else ~np.asarray(is_continuation)[batch["input_ids"]]
        batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], specials, special.mask, vocab_size,
                                                          rng, mlm_probability, starts)
        if not nsp:
            del batch["next_sentence_label"]
        yield batch
