"""An LSTM language model, laid out as PyTorch's word_language_model example (RNNModel).

    e_t = dropout(W_enc[idx_t])                   embedding (`encoder`)
    h_t, (h, c) = LSTM(e_t, (h, c))               num_layers, dropout between layers (`rnn`)
    logits_t = dropout(h_t) W_dec^T + b_dec       projection to the vocabulary (`decoder`)

With tie_weights (n_embd == hidden_size), W_dec is W_enc itself.

Truncated backpropagation through time: `model(idx, state)` starts from the
given state (None: zeros) and leaves the final state in `model.final_state`,
plain arrays with no gradient attached. The trainer passes it to the next
batch, so the memory runs through the whole text while each backward stops
at its batch's first token:

    state = None
    for x, y in batches:                   # consecutive windows of each stream
        logits = model(x, state)
        state = model.final_state
        ... loss, model.backward(dlogits), optimizer step ...
"""

import dataclasses

from minillm.backend import xp
from minillm.checkpoint import Config, Pretrained
from minillm.nn.layers import Dropout, Embedding, Linear, Module, RandomSource
from minillm.nn.lstm import LSTM
from minillm.nn.sampling import sample_next

MODEL_TYPE = "lstm_lm"


@dataclasses.dataclass
class LSTMConfig(Config):
    """Hyperparameters. dropout is used on the embeddings, between LSTM layers and on the LSTM output."""

    required = ("vocab_size", "n_embd", "hidden_size", "num_layers", "tie_weights")
    checked = {"model_type": (MODEL_TYPE,)}

    vocab_size: int = 65
    n_embd: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float = 0.1  # encoder and decoder weights ~ U(-init_range, init_range), as the PyTorch example


def _uniform(shape, bound, rng, dtype):
    return ((rng.random(shape, dtype="float64") * 2.0 - 1.0) * bound).astype(dtype)


def embedding_and_lstm(cfg, rng, dropout_source, dtype):
    """(encoder, drop_in, rnn): the embedding ~ U(-init_range, init_range), its dropout and the LSTM.

    The body that the LM and the sequence classifier share, under the same
    names, so a classifier starts from an LM's checkpoint.
    """
    encoder = Embedding(cfg.vocab_size, cfg.n_embd, rng, dtype=dtype)
    encoder.weight.data = _uniform((cfg.vocab_size, cfg.n_embd), cfg.init_range, rng, dtype)
    rnn = LSTM(cfg.n_embd, cfg.hidden_size, cfg.num_layers, cfg.dropout, rng, dropout_source, dtype)
    return encoder, Dropout(cfg.dropout, dropout_source), rnn


class LSTMLM(Pretrained, Module):
    """Embedding -> LSTM -> linear, with PyTorch's names: encoder.weight, rnn.weight_ih_l0, ..., decoder.weight/bias."""

    config_class = LSTMConfig

    def __init__(self, cfg, seed=0, dtype="float32"):
        if cfg.tie_weights and cfg.n_embd != cfg.hidden_size:
            raise ValueError(f"tie_weights needs n_embd == hidden_size, got {cfg.n_embd} and {cfg.hidden_size}")
        self.config = cfg
        self.dropout_rng = RandomSource(seed)
        rng = xp.random.default_rng(seed)
        self.encoder, self.drop_in, self.rnn = embedding_and_lstm(cfg, rng, self.dropout_rng, dtype)
        self.drop_out = Dropout(cfg.dropout, self.dropout_rng)
        self.decoder = Linear(cfg.hidden_size, cfg.vocab_size, rng, dtype=dtype)  # bias starts at zero
        if cfg.tie_weights:
            self.decoder.weight = self.encoder.weight  # one Parameter: both gradients add into it
        else:
            self.decoder.weight.data = _uniform((cfg.vocab_size, cfg.hidden_size), cfg.init_range, rng, dtype)
        self.final_state = None

    def zero_state(self, batch_size):
        """(h0, c0) of zeros, each (num_layers, B, hidden_size): the state at the start of a text."""
        return self.rnn.zero_state(batch_size)

    def forward(self, idx, state=None):
        """idx (B, T) token ids, state (h0, c0) each (L, B, H) or None -> logits (B, T, V).

        The final state is kept in self.final_state for the next call.
        """
        e = self.drop_in(self.encoder(idx))  # (B, T, E)
        h, self.final_state = self.rnn(e, state)  # (B, T, H)
        return self.decoder(self.drop_out(h))  # (B, T, V)

    def backward(self, dlogits):
        """From dloss/dlogits (B, T, V) to the embedding table, filling every .grad.

        Truncated BPTT: the final state feeds only the next batch, so no gradient
        enters through it, and the gradient of the initial state is dropped here.
        """
        dh = self.drop_out.backward(self.decoder.backward(dlogits))
        de, _ = self.rnn.backward(dh)
        self.encoder.backward(self.drop_in.backward(de))

    # ------------------------------------------------------------ generation
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, rng=None, state=None):
        """Sample max_new_tokens after idx (B, T). The prompt is read once; then each new
        token is one LSTM step from the carried state: O(1) work per token.

        self.final_state is left as it was, so sampling mid-training does not
        disturb the state a trainer carries.
        """
        rng = rng or xp.random.default_rng(0)
        was_training, kept_state = self.training, self.final_state
        self.eval()
        logits = self(idx, state)
        out = idx
        for n in range(max_new_tokens):
            next_id = sample_next(logits[:, -1, :], temperature, top_k, rng)  # (B, 1)
            out = xp.concatenate([out, next_id], axis=1)
            if n + 1 < max_new_tokens:
                logits = self(next_id, self.final_state)
        self.train(was_training)
        self.final_state = kept_state
        return out

    # ------------------------------------------------------------ checkpoints
    def checkpoint_state(self):
        """PyTorch's RNNModel names: a tied decoder.weight is written too, equal to encoder.weight, as there."""
        return {**self.state_dict(), "decoder.weight": self.decoder.weight.data}

    def state_from_checkpoint(self, tensors):
        """A tied decoder.weight must equal encoder.weight and is not loaded twice."""
        tensors = dict(tensors)
        if self.config.tie_weights:
            head, enc = tensors.pop("decoder.weight", None), tensors.get("encoder.weight")
            if head is not None and enc is not None and not (head.shape == enc.shape and (head == enc).all()):
                raise ValueError("decoder.weight differs from encoder.weight, but config ties them")
        return tensors
