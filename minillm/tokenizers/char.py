"""Character-level tokenizer: one id per distinct character of the training text.

All tokenizers share this small interface: `encode(text) -> list[int]`,
`decode(ids) -> str`, `save(directory)`, `load(directory)`, `vocab_size`.
"""

import json
import os

from minillm.tokenizers.lookup import look_up


class CharTokenizer:
    covers = "only the characters of the text it was trained on (any other is an error)"

    def __init__(self, chars):
        self.itos = list(chars)
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("character vocabulary has repeated characters")
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def train(cls, text):
        """The sorted set of the text's characters (ids follow code-point order)."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.itos)

    def encode(self, text):
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            bad = next(i for i, c in enumerate(text) if c not in self.stoi)
            raise ValueError(f"character {text[bad]!r} at offset {bad} is not in the vocabulary") from None

    def decode(self, ids):
        """The text of `ids`; an id outside 0..vocab_size-1 is a ValueError."""
        return "".join(look_up(self.itos, ids))

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump({c: i for i, c in enumerate(self.itos)}, f, ensure_ascii=False)
        with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"tokenizer_class": "CharTokenizer"}, f)

    @classmethod
    def load(cls, directory):
        path = os.path.join(directory, "vocab.json")
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
        chars = sorted(vocab, key=vocab.get)
        if [vocab[c] for c in chars] != list(range(len(chars))):
            raise ValueError(f"{path}: ids must be 0..{len(chars) - 1} with no gap")
        return cls(chars)
