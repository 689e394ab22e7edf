"""A bounded memo of per-word encodings, shared by the BPE and WordPiece tokenizers.

Texts repeat a few thousand words over and over, so each word is cut into
pieces once; the memo is emptied when it holds `limit` words, which keeps
memory bounded on corpora with long tails of rare words.
"""

class WordCache:
    """cache(word) -> encode(word), computed once per word until the memo is emptied."""

    def __init__(self, encode, limit=100_000):
        self.encode, self.limit, self.memo = encode, limit, {}

    def __call__(self, word):
        out = self.memo.get(word)
        if out is None:
            if len(self.memo) >= self.limit:
                self.memo.clear()
            out = self.memo[word] = self.encode(word)
        return out
