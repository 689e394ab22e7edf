"""Log-mel features: the FFT against a direct DFT, framing, a pure tone in its mel bin, silence at the floor."""

from hypothesis import given
from hypothesis import strategies as st

from minillm.backend import np
from minillm.data.audio_features import (LOG_FLOOR, fixed_frames, frame_signal, hann_window, hz_to_mel,
                                         log_mel_spectrogram, mel_filterbank, mel_to_hz, power_spectrum)


def direct_dft(x):
    """X_k = sum_n x_n exp(-2 pi i k n / N), k = 0 .. N/2, summed term by term."""
    N = len(x)
    return np.array([sum(x[n] * np.exp(-2j * np.pi * k * n / N) for n in range(N)) for k in range(N // 2 + 1)])


@given(st.integers(2, 24), st.integers(0, 2**31 - 1))
def test_power_spectrum_matches_a_direct_dft(n, seed):
    x = np.random.default_rng(seed).standard_normal(n)
    np.testing.assert_allclose(power_spectrum(x[None])[0], np.abs(direct_dft(x)) ** 2, rtol=1e-9, atol=1e-9)


def test_frames_cover_the_signal():
    frames = frame_signal(np.arange(1, 11, dtype=float), n_fft=4, hop=3)  # starts 0, 3, 6: the last ends at 10
    assert frames.tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    assert frame_signal(np.arange(1, 12, dtype=float), 4, 3)[-1].tolist() == [10, 11, 0, 0]  # zero-padded end
    assert frame_signal(np.ones(2), 4, 2).tolist() == [[1, 1, 0, 0]]  # shorter than a frame: one frame


def test_hann_window_and_mel_scale():
    np.testing.assert_allclose(hann_window(4), [0.0, 0.5, 1.0, 0.5], atol=1e-12)
    assert abs(hz_to_mel(1000.0) - 1000.0) < 0.1  # the scale is built so that 1 kHz is about 1000 mel
    np.testing.assert_allclose(mel_to_hz(hz_to_mel([0.0, 440.0, 4000.0])), [0.0, 440.0, 4000.0], atol=1e-9)


def test_filterbank_is_triangles_peaking_at_their_centres():
    B = mel_filterbank(10, 256, 8000)
    assert B.shape == (10, 129) and B.min() == 0.0 and B.max() <= 1.0
    peaks = B.argmax(axis=1)
    assert (np.diff(peaks) > 0).all()  # centres rise with the filter index
    centres = mel_to_hz(np.linspace(0, hz_to_mel(4000), 12))[1:-1]
    assert (np.abs(peaks * 8000 / 256 - centres) <= 8000 / 256).all()  # each peak is the bin nearest its centre


def test_pure_tone_lands_in_its_mel_bin():
    sr, n_mels = 8000, 32
    edges = mel_to_hz(np.linspace(0, hz_to_mel(sr / 2), n_mels + 2))
    for m in (3, 12, 25):
        t = np.arange(sr // 2) / sr
        features = log_mel_spectrogram(np.sin(2 * np.pi * edges[m + 1] * t), sr, n_mels=n_mels)  # filter m's centre
        assert (features.argmax(axis=1) == m).all()


def test_silence_gives_the_floor_and_padding_uses_it():
    features = log_mel_spectrogram(np.zeros(1000), 8000)
    assert features.shape == (7, 32)  # ceil((1000 - 256) / 128) + 1 frames
    np.testing.assert_allclose(features, np.log(LOG_FLOOR), rtol=1e-6)
    short = np.arange(6, dtype=np.float32).reshape(3, 2)
    padded = fixed_frames(short, 6)
    assert padded[1:4].tolist() == short.tolist() and (padded[[0, 4, 5]] == np.float32(np.log(LOG_FLOOR))).all()
    assert fixed_frames(np.arange(10.0).reshape(5, 2), 3).tolist() == [[2, 3], [4, 5], [6, 7]]
