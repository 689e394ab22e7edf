"""Reading ids back through a vocabulary table, as every tokenizer's decode does."""

import operator


def look_up(table, ids):
    """[table[i] for i in ids] for a list or dict table; an id that is missing, negative or no integer
    is a ValueError naming its position."""
    out = []
    for k, i in enumerate(ids):
        try:
            index = operator.index(i)
            if index < 0:  # a list would read it from the end
                raise IndexError(index)
            out.append(table[index])
        except (IndexError, KeyError, TypeError):
            raise ValueError(f"id {i!r} at position {k} is not in the vocabulary (size {len(table)})") from None
    return out
