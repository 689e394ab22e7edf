"""Students for knowledge distillation, built from a BERT teacher's weights (the training: tasks/distillation.py).

    keep_layers(teacher, [0, 2, 4])      DistilBERT's start: the teacher with every other layer, same width
    narrow_student(teacher, 128, 4, ...) a narrower BERT whose embeddings are the teacher's projected on their
                                         top principal directions; its layers start fresh
    trim_vocabulary(student, tok, keep)  either of them with only some rows of the word table (and a
                                         tokenizer of those pieces); `kept_pieces` picks the rows a task needs

Each returns a BertModel (a backbone without a head) that `finetune.py --init DIR` fine-tunes, with
`--teacher` to distil. MiniLM's 30,522 x 384 word table is half of its 22.7M parameters, so dropping
layers alone cannot get a student below a quarter of its size: the table must be narrowed or cut. A task
reads few of its rows (SST-2's 67,349 training phrases use 11,570 of the 30,522 pieces, the 4,000 most
frequent 91% of their tokens), and a word whose pieces were cut is spelled with shorter pieces that stay.
"""

import dataclasses
from collections import Counter

from minillm.backend import xp
from minillm.models.bert import BertModel
from minillm.nn.layers import RandomSource


def backbone(model):
    """The BertModel of a BERT task model (its `bert`), or the model itself."""
    body = getattr(model, "bert", model)
    if not isinstance(body, BertModel):
        raise ValueError(f"a student is built from a BERT teacher, not a {type(model).__name__}")
    return body


def keep_layers(teacher, layers):
    """A BertModel of the teacher's embeddings, pooler and the encoder layers numbered in `layers`, in order."""
    body = backbone(teacher)
    n = body.config.num_hidden_layers
    if not layers or any(not 0 <= i < n for i in layers):
        raise ValueError(f"layers to keep must be among 0..{n - 1} of the teacher's, got {list(layers)}")
    state = {}
    for name, a in body.state_dict().items():
        if name.startswith("encoder.layer."):
            index, rest = name[len("encoder.layer."):].split(".", 1)
            if int(index) in layers:
                state[f"encoder.layer.{list(layers).index(int(index))}.{rest}"] = a
        else:
            state[name] = a
    return rebuilt(body, dataclasses.replace(body.config, num_hidden_layers=len(layers)), state)


def rebuilt(body, cfg, state):
    """A BertModel of config `cfg` (with or without a pooler, as `body`) holding the tensors `state`."""
    student = BertModel(cfg, xp.random.default_rng(0), RandomSource(0), "float32", body.pooler is not None)
    student.load_state_dict(state)
    return student


def kept_pieces(tokenizer, texts, size):
    """The ids, ascending, of the `size` word pieces a cut vocabulary keeps for `texts`: the special tokens,
    both spellings ("c", "##c") of every character in the texts' pieces, so that each of their words can
    still be spelled, then the pieces most frequent in the texts' encodings."""
    counts = Counter(i for text in texts for i in tokenizer.encode(text))
    needed = set(tokenizer.special_ids)
    characters = {c for i in counts if i not in needed for c in tokenizer.itos[i].removeprefix("##")}
    needed |= {tokenizer.stoi[s] for c in characters for s in (c, "##" + c) if s in tokenizer.stoi}
    if size < len(needed):
        raise ValueError(f"a vocabulary of {size} pieces cannot hold the {len(needed)} special and "
                         f"single-character pieces these texts need")
    frequent = [i for i, _ in counts.most_common() if i not in needed]
    return sorted(needed | set(frequent[:size - len(needed)]))


def trim_vocabulary(student, tokenizer, keep):
    """(the student with the rows `keep` of its word table, a WordPiece tokenizer of those pieces): the ids
    are renumbered in the same order, so [PAD] stays first when it was."""
    body = backbone(student)
    keep = list(keep)
    state = body.state_dict()
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][xp.asarray(keep)]
    cfg = dataclasses.replace(body.config, vocab_size=len(keep), pad_token_id=keep.index(body.config.pad_token_id))
    pieces = type(tokenizer)([tokenizer.itos[i] for i in keep], tokenizer.lowercase, tokenizer.unk_token,
                             tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token, tokenizer.mask_token,
                             tokenizer.tokenizer_class)
    return rebuilt(body, cfg, state), pieces


def principal_directions(table, k):
    """The k right singular vectors of the centred table (rows: vectors), as the columns of a (C, k) matrix."""
    centred = table - table.mean(axis=0, keepdims=True)
    _, _, vt = xp.linalg.svd(centred.astype(xp.float64), full_matrices=False)  # vt: (C, C)
    return vt[:k].T.astype(table.dtype)


def narrow_student(teacher, hidden_size, num_layers, num_heads, intermediate_size, seed=0):
    """A BertModel of width hidden_size: word, position and type embeddings = the teacher's times P,
    P (C_teacher, hidden_size) the word table's top principal directions (the projection keeping the most
    of its variance); LayerNorms, encoder layers and pooler fresh (BERT's init)."""
    body = backbone(teacher)
    if hidden_size > body.config.hidden_size:
        raise ValueError(f"a narrow student is at most the teacher's width {body.config.hidden_size}")
    cfg = dataclasses.replace(body.config, hidden_size=hidden_size, num_hidden_layers=num_layers,
                              num_attention_heads=num_heads, intermediate_size=intermediate_size)
    student = BertModel(cfg, xp.random.default_rng(seed), RandomSource(seed), "float32")
    emb = body.embeddings
    p = principal_directions(emb.word_embeddings.weight.data, hidden_size)  # (C, h)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(student.embeddings, name).weight.data = getattr(emb, name).weight.data @ p  # (rows, h)
    return student
