"""Tokenizers: text to ids and back. See char.py for the shared interface.

- CharTokenizer (char.py): one id per character.
- BPETokenizer (bpe.py): GPT-2's byte-level BPE; Hugging Face GPT2Tokenizer files.
- WordPieceTokenizer (wordpiece.py): BERT's WordPiece; Hugging Face BertTokenizer files.
"""

import os

from minillm.checkpoint import read_json
from minillm.tokenizers.bpe import BPETokenizer
from minillm.tokenizers.char import CharTokenizer
from minillm.tokenizers.wordpiece import WordPieceTokenizer

CLASSES = {"CharTokenizer": CharTokenizer,
           "GPT2Tokenizer": BPETokenizer, "GPT2TokenizerFast": BPETokenizer,
           "BertTokenizer": WordPieceTokenizer, "BertTokenizerFast": WordPieceTokenizer,
           "MPNetTokenizer": WordPieceTokenizer, "MPNetTokenizerFast": WordPieceTokenizer}


def load_tokenizer(directory):
    """Load whichever tokenizer a directory holds.

    tokenizer_config.json's "tokenizer_class" decides; without that file, merges.txt means
    BPE, vocab.txt means WordPiece, and vocab.json alone means characters.
    """
    path = os.path.join(directory, "tokenizer_config.json")
    if os.path.exists(path):
        kind = read_json(path).get("tokenizer_class")
        if kind not in CLASSES:
            raise ValueError(f"{path}: unknown tokenizer_class {kind!r}; known: {', '.join(CLASSES)}")
    elif os.path.exists(os.path.join(directory, "merges.txt")):
        kind = "GPT2Tokenizer"
    elif os.path.exists(os.path.join(directory, "vocab.txt")):
        kind = "BertTokenizer"
    elif os.path.exists(os.path.join(directory, "vocab.json")):
        kind = "CharTokenizer"
    else:
        raise FileNotFoundError(f"{directory}: no tokenizer_config.json, merges.txt, vocab.txt or vocab.json")
    return CLASSES[kind].load(directory)
