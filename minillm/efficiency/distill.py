"""Students for knowledge distillation, built from a BERT teacher's weights (the training: tasks/distillation.py).

    keep_layers(teacher, [0, 2, 4])      DistilBERT's start: the teacher with every other layer, same width
    narrow_student(teacher, 128, 4, ...) a narrower BERT whose embeddings are the teacher's projected on their
                                         top principal directions; its layers start fresh

Both return a BertModel (a backbone without a head) that `finetune.py --init DIR` fine-tunes, with
`--teacher` to distil. A narrow student is how a model gets below a quarter of MiniLM's size: its
30,522 x 384 word table alone is half of MiniLM's 22.7M parameters, so dropping layers cannot get there.
"""

import dataclasses

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
    cfg = dataclasses.replace(body.config, num_hidden_layers=len(layers))
    student = BertModel(cfg, xp.random.default_rng(0), RandomSource(0), "float32", body.pooler is not None)
    state = {}
    for name, a in body.state_dict().items():
        if name.startswith("encoder.layer."):
            index, rest = name[len("encoder.layer."):].split(".", 1)
            if int(index) in layers:
                state[f"encoder.layer.{list(layers).index(int(index))}.{rest}"] = a
        else:
            state[name] = a
    student.load_state_dict(state)
    return student


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
