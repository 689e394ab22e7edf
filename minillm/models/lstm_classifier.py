"""An LSTM sequence classifier: the recurrent baseline beside the Transformers in every fine-tuning table.

    e_t = dropout(W_enc[idx_t])                      embedding (`encoder`, as in the LSTM LM)
    h_1..h_T = LSTM(e_1..e_T)                        from a zero state (`rnn`)
    pooled = h_n                     pooling="last": the top layer's state after the n-th, last real token
           | (1/n) sum_{t<=n} h_t    pooling="mean": the mean over the n real tokens
    logits = dropout(pooled) W^T + b                 (`classifier`)

Texts come right-padded to the longest of their batch. The LSTM reads left to
right, so h_t depends on tokens 1..t only: at the real positions the outputs
are exactly those of the text alone, and both poolings read only those (the
LSTM's own final state has run on through the padding and is not used). In
the backward the padded positions receive zero gradient, so nothing flows
from them into the real ones either.

The embedding and LSTM keep the LSTM LM's names (encoder.weight,
rnn.weight_ih_l0, ...), so `finetune.py --init <a train.py --model lstm run>`
starts from them; the LM's `decoder` (its projection to the vocabulary) is not
used. The config is the LM's with the pooling added (model_type lstm_lm).
"""

import dataclasses

from minillm.backend import xp
from minillm.models.heads import TaskModel
from minillm.models.lstm_lm import LSTMConfig, embedding_and_lstm
from minillm.nn import functional as F
from minillm.nn.layers import Dropout, Linear


def last_token_forward(h, mask):
    """h[b, n_b - 1], n_b = sum_t mask[b, t]: the output at each sequence's last real token. (B, T, C) -> (B, C)."""
    return F.gather_positions_forward(h, mask.sum(axis=1) - 1)


POOLINGS = {"last": (last_token_forward, F.gather_positions_backward),
            "mean": (F.masked_mean_forward, F.masked_mean_backward)}


@dataclasses.dataclass
class LSTMClassifierConfig(LSTMConfig):
    """The LSTM LM's hyperparameters and the classifier's pooling, "mean" or "last"."""

    pooling: str = "mean"

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling is {self.pooling!r}, expected one of {', '.join(POOLINGS)}")


class LSTMForSequenceClassification(TaskModel):
    """Embedding -> LSTM -> last-token or mean pooling -> dropout -> `classifier` (Linear with bias)."""

    architecture, config_class = "LSTMForSequenceClassification", LSTMClassifierConfig
    unused_prefixes = ("decoder.",)  # the LM's projection to the vocabulary

    def __init__(self, cfg, label_names, pad_token_id=0, seed=0, dtype="float32"):
        rng = self.init_task_model(cfg, label_names, pad_token_id, seed)
        self.encoder, self.drop_in, self.rnn = embedding_and_lstm(cfg, rng, self.dropout_rng, dtype)
        self.dropout = Dropout(cfg.dropout, self.dropout_rng)
        self.classifier = Linear(cfg.hidden_size, len(self.label_names), rng, dtype=dtype)

    def forward(self, idx, attention_mask, token_type_ids=None):
        """idx, attention_mask: (B, T), right-padded -> logits (B, num_labels). One text: no token types."""
        e = self.drop_in(self.encoder(idx))  # (B, T, E)
        h, _ = self.rnn(e)  # (B, T, H); the final state, past the padding, is not used
        pool, _ = POOLINGS[self.config.pooling]
        pooled, self.pool_cache = pool(h, xp.asarray(attention_mask))  # (B, H)
        return self.classifier(self.dropout(pooled))  # (B, K)

    def backward(self, dlogits):
        """From dloss/dlogits (B, K) to the embedding table; the zero initial state takes no gradient."""
        _, pool_backward = POOLINGS[self.config.pooling]
        dh = pool_backward(self.dropout.backward(self.classifier.backward(dlogits)), self.pool_cache)  # (B, T, H)
        de, _ = self.rnn.backward(dh)
        self.encoder.backward(self.drop_in.backward(de))
