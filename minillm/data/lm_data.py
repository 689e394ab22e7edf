"""Language-modelling corpora: texts split for training and validation, tokenizers, token streams.

Every model of train.py (n-gram, LSTM, GPT) reads the same streams, so their
validation losses are comparable. Trained tokenizers and encoded streams are
cached under $MINILLM_CACHE, keyed by dataset, tokenizer kind and size, and a
hash of the texts they came from (a changed split or data file is a new key).
"""

import hashlib
import os
import tempfile

from tqdm import tqdm

from minillm.backend import np
from minillm.checkpoint import cache_dir
from minillm.data.corpora import lm_corpus
from minillm.data.sentences import review_documents
from minillm.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer, load_tokenizer


def build_tokenizer(kind, name, vocab_size, directory=None, progress=True):
    """A tokenizer trained on the corpus (characters: on all of it, so no character is unknown)."""
    train, val = lm_corpus(name, directory)
    texts = train + val if kind == "char" else train
    size = "" if kind == "char" else f"-{vocab_size}"
    path = os.path.join(cache_dir(), "tokenizers", f"{name}-{kind}{size}-{texts_digest(texts)}")
    if os.path.exists(path):
        return load_tokenizer(path)
    tokenizer = train_tokenizer(kind, texts, vocab_size, progress)
    tokenizer.save(path)
    return tokenizer


def train_tokenizer(kind, texts, vocab_size, progress=True):
    """A char, bpe or wordpiece tokenizer learned from texts (characters: every one that occurs)."""
    if kind == "char":
        return CharTokenizer.train("".join(texts))
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size, progress=progress)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(texts, vocab_size, progress=progress)
    raise ValueError(f"unknown tokenizer kind {kind!r}: expected char, bpe or wordpiece")


def document_separator(tokenizer):
    """Ids placed between documents: <|endoftext|> for BPE, [SEP] for WordPiece, nothing for characters."""
    if isinstance(tokenizer, BPETokenizer):
        return [tokenizer.special_tokens["<|endoftext|>"]]
    if isinstance(tokenizer, WordPieceTokenizer):
        return [tokenizer.sep_id]
    return []


def texts_digest(texts):
    """A short hash of the texts, so that nothing cached outlives the text it was made from."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()[:12]


def tokenizer_digest(tokenizer):
    """A short hash of the tokenizer's files, so a cached stream never outlives its tokenizer."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        digest = hashlib.sha256()
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                digest.update(name.encode() + f.read())
    return digest.hexdigest()[:12]


def token_stream(tokenizer, documents, cache_key=None, progress=False):
    """All documents encoded and joined by the separator, as one uint16/int32 host array (progress: a bar over
    the documents the first time, before the array is cached)."""
    path = cache_key and os.path.join(cache_dir(), "streams", f"{cache_key}-{texts_digest(documents)}.npy")
    if path and os.path.exists(path):
        return np.load(path, allow_pickle=False)
    separator = document_separator(tokenizer)
    ids = []
    for doc in tqdm(documents, desc="encoding", disable=not progress):
        ids.extend(tokenizer.encode(doc))
        ids.extend(separator)
    stream = np.array(ids, dtype=np.uint16 if tokenizer.vocab_size <= 65536 else np.int32)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path + ".tmp.npy", stream)
        os.replace(path + ".tmp.npy", path)
    return stream


def lm_streams(kind, name, vocab_size, directory=None, progress=True):
    """(tokenizer, train ids, val ids) for train.py's --tokenizer / --data / --vocab-size."""
    tokenizer = build_tokenizer(kind, name, vocab_size, directory, progress)
    train, val = lm_corpus(name, directory)
    key = f"{name}-{kind}-{tokenizer_digest(tokenizer)}"
    return (tokenizer, token_stream(tokenizer, train, key + "-train", progress),
            token_stream(tokenizer, val, key + "-val", progress))


def sentence_documents(tokenizer, documents, cache_key, progress=False):
    """Documents as lists of sentences of token ids (BERT's NSP input), cached as flat arrays."""
    path = os.path.join(cache_dir(), "documents", f"{cache_key}-{texts_digest(documents)}.npz")
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            ids, sentence_ends, document_ends = f["ids"], f["sentence_ends"], f["document_ends"]
        sentences = [s.tolist() for s in np.split(ids, sentence_ends[:-1])]
        starts = [0, *document_ends[:-1].tolist()]
        return [sentences[a:b] for a, b in zip(starts, document_ends.tolist())]
    docs = review_documents(tqdm(documents, desc="encoding", disable=not progress), tokenizer.encode)
    sentences = [s for doc in docs for s in doc]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, ids=np.array([i for s in sentences for i in s], dtype=np.int32),
             sentence_ends=np.cumsum([len(s) for s in sentences]), document_ends=np.cumsum([len(d) for d in docs]))
    os.replace(tmp, path)
    return docs
