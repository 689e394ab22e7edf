"""The embedding cache: the same rows as embedding directly, each text computed once."""

from minillm.backend import np, xp
from minillm.models.bert import BertConfig, BertModel
from minillm.nn.layers import RandomSource
from minillm.tasks.sentence_embeddings import EmbeddingCache, sentence_embeddings
from minillm.tokenizers import WordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "bad", "film", "##s"]


def test_cache_returns_the_direct_embeddings_and_computes_each_text_once():
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=16)
    model, tokenizer = BertModel(cfg, xp.random.default_rng(0), RandomSource(0), "float32"), WordPieceTokenizer(VOCAB)
    texts = ["a good film", "bad films", "a good film", "film"]
    cache = EmbeddingCache(model, tokenizer, batch_size=2, max_length=8)
    got = cache.embed(texts)
    np.testing.assert_allclose(got, sentence_embeddings(model, tokenizer, texts, 2, 8), atol=1e-6)
    assert len(cache.rows) == 3
    cache.model = None  # known texts need no model
    np.testing.assert_array_equal(cache.embed(["film", "a good film"]), got[[3, 0]])
