"""The LSTM benchmark runs on a tiny model."""

from minillm.models.lstm_lm import LSTMConfig


def test_benchmark_runs_on_a_tiny_model():
    from minillm.tools.lstm_bench import measure

    seconds, tokens_per_s = measure(LSTMConfig(vocab_size=5, n_embd=3, hidden_size=3, num_layers=2), 2, 4, 1, 2)
    assert seconds > 0 and abs(tokens_per_s * seconds - 8) < 1e-6
