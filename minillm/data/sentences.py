"""BERT pretraining data from IMDB reviews: text -> sentences -> ids -> MLM + NSP batches.

A review is a document. Sentences are split by one simple rule: `<br />` tags
end a sentence, and so does ., ! or ? (optionally followed by one closing
quote or bracket) followed by whitespace. Abbreviations such as "Mr. Smith"
are split too; NSP only needs sentence-like segments, not linguistic truth.

Every epoch draws new pairs and new masks from a generator seeded by
(seed, epoch), so runs repeat exactly and a resumed run sees the same data.
"""

import re

from minillm.data.corpora import imdb

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
