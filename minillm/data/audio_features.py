"""Log-mel spectrograms on the host, one readable step at a time.

    frames     x cut into overlapping windows of n_fft samples, hop samples apart        (F, n_fft)
    window     each frame times a periodic Hann window w_n = 0.5 - 0.5 cos(2 pi n / N)
    spectrum   P_k = |X_k|^2, X_k = sum_n x_n exp(-2 pi i k n / N), k = 0 .. N/2 (rfft)  (F, N/2 + 1)
    mel        M = P B^T, B the triangular filters evenly spaced on the mel scale         (F, n_mels)
               mel(f) = 2595 log10(1 + f / 700)  (HTK's formula)
    log        log(max(M, floor)): silence gives log(floor), never -inf

The FFT is NumPy's; tests check it against the direct sum above.
"""

import functools

from minillm.backend import np

LOG_FLOOR = 1e-10


def frame_signal(x, n_fft, hop):
    """(F, n_fft) frames starting every hop samples; the end is zero-padded so every sample is in a frame."""
    n_frames = 1 + max(0, -(-(len(x) - n_fft) // hop))  # ceil division: the last frame covers the end
    padded = np.zeros((n_frames - 1) * hop + n_fft, dtype=np.float64)
    padded[:len(x)] = x
    starts = hop * np.arange(n_frames)[:, None]  # (F, 1)
    return padded[starts + np.arange(n_fft)[None, :]]  # (F, n_fft)


@functools.lru_cache(maxsize=8)
def hann_window(n):
    """The periodic Hann window (as in STFT libraries): w_n = 0.5 - 0.5 cos(2 pi n / N)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def power_spectrum(frames):
    """|X_k|^2 for k = 0 .. N/2 of each frame (the rest mirror them for a real signal)."""
    return np.abs(np.fft.rfft(frames, axis=-1)) ** 2


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)  # built once per setting, read by every spectrogram
def mel_filterbank(n_mels, n_fft, sample_rate, f_min=0.0, f_max=None):
    """(n_mels, n_fft/2 + 1) triangular filters: filter m rises from centre m-1 to centre m and falls to m+1,
    the n_mels + 2 edges evenly spaced in mel between f_min and f_max (default: the Nyquist frequency)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (n_mels + 2,) in Hz
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # each rfft bin's frequency
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel_spectrogram(x, sample_rate, n_fft=256, hop=128, n_mels=32, floor=LOG_FLOOR):
    """(F, n_mels) float32 log-mel energies of a 1-D signal."""
    frames = frame_signal(np.asarray(x, dtype=np.float64), n_fft, hop) * hann_window(n_fft)  # (F, n_fft)
    mel = power_spectrum(frames) @ mel_filterbank(n_mels, n_fft, sample_rate).T  # (F, n_mels)
    return np.log(np.maximum(mel, floor)).astype(np.float32)


def normalize_level(features, dynamic_range=12.0):
    """Loudness removed: log-energies relative to the recording's loudest, the bottom cut at -dynamic_range
    (12 nats of power is 52 dB), then mapped to [-1, 1]. Speakers and microphones differ in level; this
    keeps only the shape of the spectrogram."""
    relative = np.maximum(features - features.max(), -dynamic_range)
    return (relative / (dynamic_range / 2) + 1.0).astype(np.float32)


def fixed_frames(features, n_frames, fill=np.log(LOG_FLOOR)):
    """(n_frames, n_mels): the middle n_frames of a longer spectrogram, a shorter one centred in `fill`
    (the log of silence)."""
    F = len(features)
    if F >= n_frames:
        start = (F - n_frames) // 2
        return features[start:start + n_frames]
    out = np.full((n_frames, features.shape[1]), fill, dtype=features.dtype)
    start = (n_frames - F) // 2
    out[start:start + F] = features
    return out
