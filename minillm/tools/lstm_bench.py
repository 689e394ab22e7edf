"""Benchmark LSTM language-model training: `python -m minillm.tools.lstm_bench`.

Times full truncated-BPTT training steps (forward from the carried state,
cross-entropy, backward, an SGD update) at a char-level Tiny Shakespeare
size (vocabulary 65) and prints ms/step and training tokens/s. Tokens are
random: the cost of a step does not depend on which characters it sees.
"""

import argparse

from minillm import backend
from minillm.backend import host_rng, to_device
from minillm.cli.errors import run_main
from minillm.models.lstm_lm import LSTMLM, LSTMConfig
from minillm.nn.loss import cross_entropy_backward, cross_entropy_forward
from minillm.tools.bench import time_steps


def train_step_fn(model, batch_size, bptt, lr=1.0, seed=0):
    """One step of truncated BPTT on random tokens; the state runs on from step to step."""
    rng = host_rng(seed)
    V = model.config.vocab_size
    carried = {"state": None}

    def step():
        tokens = to_device(rng.integers(0, V, (batch_size, bptt + 1)))
        logits = model(tokens[:, :-1], carried["state"])  # (B, T, V)
        carried["state"] = model.final_state
        loss, cache = cross_entropy_forward(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
        model.zero_grad()
        model.backward(cross_entropy_backward(1.0, cache).reshape(logits.shape))
        for p in model.parameters():
            p.data -= lr * p.grad
        return loss

    return step


def measure(cfg, batch_size, bptt, warmup, steps, seed=0):
    """(seconds per step, training tokens per second)."""
    step = train_step_fn(LSTMLM(cfg, seed=seed), batch_size, bptt, seed=seed)
    seconds = time_steps(step, warmup, steps)
    return seconds, batch_size * bptt / seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=backend.device(), choices=["cpu", "gpu"])
    ap.add_argument("--vocab-size", type=int, default=65)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    backend.use(args.device)
    cfg = LSTMConfig(vocab_size=args.vocab_size, n_embd=args.n_embd, hidden_size=args.hidden_size,
                     num_layers=args.num_layers, dropout=args.dropout)
    seconds, tokens_per_s = measure(cfg, args.batch_size, args.bptt, args.warmup, args.steps)
    print(f"LSTM LM train step on {args.device}: {args.num_layers} layers, hidden {args.hidden_size}, "
          f"embedding {args.n_embd}, vocab {args.vocab_size}, batch {args.batch_size}, bptt {args.bptt}, "
          f"dropout {args.dropout}")
    print(f"{seconds * 1e3:.1f} ms/step, {tokens_per_s:,.0f} tokens/s (mean of {args.steps} steps)")


if __name__ == "__main__":
    run_main(main)
