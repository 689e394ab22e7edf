"""CoNLL-2003 English named entities: sentences of words with their tags, IOB1 read as BIO2."""

import re

from minillm.data.datasets import DataFormatError, check_split, dataset_path, read_lines

# CoNLL-2003 -----------------------------------------------------------------
CONLL_FILES = {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}


_CONLL_TAG = re.compile(r"O|[BI]-(PER|LOC|ORG|MISC)")


def iob1_to_bio2(tags):
    """IOB1 tags (an entity starts with I- unless it directly follows one of the
    same type, where B- marks the boundary) as BIO2 (every entity starts with B-).

    An I-X becomes B-X unless the previous token is of type X (I-X or B-X);
    B-X stays B-X and O stays O.
    """
    out = []
    previous_type = None
    for tag in tags:
        kind, _, entity_type = tag.partition("-")
        if kind == "I" and entity_type != previous_type:
            tag = "B-" + entity_type
        out.append(tag)
        previous_type = entity_type if kind in ("B", "I") else None
    return out


def conll2003(split, directory=None):
    """CoNLL-2003 English sentences of "train", "dev" (eng.testa) or "test" (eng.testb)
    as (words, ner_tags) with the tags converted from IOB1 to BIO2.

    `-DOCSTART-` lines are document separators, not sentences, and are skipped;
    the POS and chunk columns are read, checked and dropped.
    """
    check_split("conll2003", split)
    path = dataset_path("conll2003", f"conll2003/{CONLL_FILES[split]}", directory)
    out, words, tags = [], [], []

    def end_sentence():
        if words:
            out.append((list(words), iob1_to_bio2(tags)))
            words.clear()
            tags.clear()

    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            end_sentence()
            continue
        fields = line.split(" ")
        if len(fields) != 4:
            raise DataFormatError(path, number,
                                  f"expected 4 space-separated columns 'word POS chunk NER', got {line!r}")
        if fields[0] == "-DOCSTART-":
            end_sentence()
            continue
        if not _CONLL_TAG.fullmatch(fields[3]):
            raise DataFormatError(path, number, f"NER tag {fields[3]!r} is not O or I-/B- PER, LOC, ORG, MISC")
        words.append(fields[0])
        tags.append(fields[3])
    end_sentence()
    return out
