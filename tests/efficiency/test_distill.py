"""Students built from a teacher: kept layers compute what those layers of the teacher compute; narrow ones
start from the teacher's embeddings projected on their principal directions."""

import pytest

from minillm.backend import to_host, xp
from minillm.efficiency.distill import keep_layers, kept_pieces, narrow_student, principal_directions, trim_vocabulary
from minillm.models.bert import BertConfig
from minillm.models.heads import BertForSequenceClassification
from minillm.tokenizers.wordpiece import WordPieceTokenizer


def teacher():
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=10)
    return BertForSequenceClassification(cfg, ["neg", "pos"], seed=3).eval()


def test_kept_layers_compute_the_teachers_layers():
    model = teacher()
    student = keep_layers(model, [0, 2]).eval()
    ids = xp.random.default_rng(0).integers(1, 30, (2, 6))
    mask = xp.ones((2, 6), dtype=xp.int64)
    body = model.bert
    h = body.embeddings(ids, xp.zeros((2, 6), dtype=xp.int64))
    for i in (0, 2):
        h = body.encoder.layer[i](h, mask[:, None, None, :] != 0)
    seq, pooled = student(ids, None, mask)
    assert float(to_host(xp.abs(seq - h).max())) < 1e-6
    assert float(to_host(xp.abs(pooled - body.pooler(h)).max())) < 1e-6
    assert student.num_parameters() == model.bert.num_parameters() - 2 * model.bert.encoder.layer[0].num_parameters()
    with pytest.raises(ValueError, match=r"among 0..3"):
        keep_layers(model, [4])


def test_narrow_student_starts_from_projected_embeddings():
    model = teacher()
    student = narrow_student(model, 8, 1, 2, 16)
    p = principal_directions(model.bert.embeddings.word_embeddings.weight.data, 8)  # (16, 8)
    assert float(to_host(xp.abs(p.T @ p - xp.eye(8)).max())) < 1e-5  # orthonormal directions
    word = student.embeddings.word_embeddings.weight.data
    assert word.shape == (30, 8)
    assert float(to_host(xp.abs(word - model.bert.embeddings.word_embeddings.weight.data @ p).max())) < 1e-6
    # the top direction keeps more of the table's variance than any other
    centred = model.bert.embeddings.word_embeddings.weight.data
    centred = centred - centred.mean(axis=0)
    variance = to_host(((centred @ p) ** 2).sum(axis=0))
    assert list(variance) == sorted(variance, reverse=True)
    assert student.config.hidden_size == 8 and student.config.num_hidden_layers == 1
    with pytest.raises(ValueError, match="at most the teacher's width 16"):
        narrow_student(model, 32, 1, 2, 16)



def test_cut_vocabulary_keeps_the_rows_the_texts_need():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##a", "##b", "##c", "ab", "abc", "ca",
             "##ab", "z", "##z"]
    tokenizer = WordPieceTokenizer(vocab, tokenizer_class="BertTokenizerFast")  # a class the cut keeps
    texts = ["abc ab ab", "ca ab"]  # pieces: abc, ab, ab, ca, ab
    keep = kept_pieces(tokenizer, texts, 12)
    # the specials, both spellings of a, b and c (z is in no text), then the most frequent piece, "ab"
    assert [vocab[i] for i in keep] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##a", "##b",
                                        "##c", "ab"]
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=10)
    model = BertForSequenceClassification(cfg, ["neg", "pos"], seed=3).eval()
    student, pieces = trim_vocabulary(model, tokenizer, keep)
    assert pieces.itos == [vocab[i] for i in keep] and pieces.tokenizer_class == tokenizer.tokenizer_class
    assert student.config.vocab_size == 12 and student.config.pad_token_id == 0
    # a text of kept pieces: the same pieces, renumbered, and the same hidden states as the teacher's
    ids, new_ids = tokenizer.encode("ab c"), pieces.encode("ab c")
    assert [pieces.itos[i] for i in new_ids] == [vocab[i] for i in ids]
    mask = xp.ones((1, len(ids)), dtype=xp.int64)
    seq, _ = student.eval()(xp.asarray([new_ids]), None, mask)
    ref, _ = model.bert(xp.asarray([ids]), None, mask)
    assert float(to_host(xp.abs(seq - ref).max())) < 1e-6
    # a word whose piece was cut is spelled with the shorter pieces that stayed
    assert pieces.convert_ids_to_tokens(pieces.encode("abc")) == ["ab", "##c"]
    with pytest.raises(ValueError, match="cannot hold the 11 special and single-character pieces"):
        kept_pieces(tokenizer, texts, 10)
