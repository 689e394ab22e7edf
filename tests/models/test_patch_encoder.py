"""The patch Transformer: [CLS] and positions in place, gradients of every parameter and the input."""

from hypothesis import given, settings, strategies as st

from minillm.backend import to_float, xp
from minillm.models.bert import BertConfig
from minillm.models.patch_encoder import PatchEncoder, patch_grid
from minillm.nn.gradcheck import assert_gradients_close, gradcheck_module
from minillm.nn.layers import RandomSource


def _cfg(n_positions):
    return BertConfig(vocab_size=1, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=6,
                      max_position_embeddings=n_positions, type_vocab_size=1, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, initializer_range=0.5)


def test_patch_grid():
    assert patch_grid("image", (28, 28), 7) == (16, 49)
    assert patch_grid("time", (48, 32), 2) == (24, 64)


@settings(max_examples=2)
@given(st.integers(0, 2**31 - 1), st.sampled_from([("image", (4, 4), 2), ("time", (6, 3), 3)]))
def test_patch_encoder_gradients(seed, setting):
    kind, size, p = setting
    rng = xp.random.default_rng(seed)
    n = patch_grid(kind, size, p)[0]
    enc = PatchEncoder(kind, size, p, _cfg(n + 1), rng, RandomSource(0), "float64")
    x = rng.standard_normal((2, *size))
    h = enc(x)
    assert h.shape == (2, n + 1, 4)
    # the [CLS] token is the same for every input before the layers mix it with the patches
    first = enc.embeddings(x)[:, 0]
    assert to_float(abs(first[0] - first[1]).max()) == 0.0
    names = [n for n, _ in enc.named_parameters() if not n.endswith("attention.self.key.bias")]
    errors = gradcheck_module(enc, x)
    errors.pop("encoder.layer.0.attention.self.key.bias")  # its true gradient is 0 (softmax ignores a shared shift)
    assert_gradients_close(errors, ["input0", *names])
