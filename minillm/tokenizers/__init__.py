"""Tokenizers: text to ids and back. See char.py for the shared interface."""

import json
import os

from minillm.tokenizers.char import CharTokenizer


def load_tokenizer(directory):
    """Load whichever tokenizer a directory holds, by its tokenizer_config.json."""
    path = os.path.join(directory, "tokenizer_config.json")
    kind = "CharTokenizer"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            kind = json.load(f).get("tokenizer_class", kind)
    classes = {"CharTokenizer": CharTokenizer}
    if kind not in classes:
        raise ValueError(f"{path}: unknown tokenizer_class {kind!r}; known: {', '.join(classes)}")
    return classes[kind].load(directory)
