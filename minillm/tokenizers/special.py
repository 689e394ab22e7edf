"""Finding special tokens (`<|endoftext|>`, `[MASK]`...) in raw text.

Both BPE and WordPiece cut the text at special tokens before anything else
runs, as Hugging Face's fast tokenizers do: the pieces between them are
tokenized normally and each special token becomes its own id.
"""

import regex


def special_pattern(tokens):
    """A regex matching any of `tokens`, longest first (so `<|a|>` cannot hide `<|a|>b`)."""
    if not tokens:
        return None
    return regex.compile("|".join(regex.escape(t) for t in sorted(tokens, key=lambda t: (-len(t), t))))


def split_special(text, pattern):
    """Yield (start, end, is_special) spans that cover `text` in order, empty spans left out."""
    start = 0
    if pattern is not None:
        for m in pattern.finditer(text):
            if m.start() > start:
                yield start, m.start(), False
            yield m.start(), m.end(), True
            start = m.end()
    if start < len(text):
        yield start, len(text), False
