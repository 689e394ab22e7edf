"""The Free Spoken Digit Dataset: WAV files read from the RIFF spec, and its splits.

A RIFF/WAVE file is a list of chunks, each `4-byte id, 4-byte little-endian size, data` (padded to
an even size), inside one `RIFF <size> WAVE` chunk:

    fmt     format 1 (PCM), channels, sample rate, byte rate, block align, bits per sample
    data    the samples, little-endian, channels interleaved

FSDD's files are 8,000 Hz, mono, 16-bit PCM, named `{digit}_{speaker}_{index}.wav`. Two splits:
the dataset's own (indices 0-4 of every (digit, speaker) pair are test, 300 files) and
leave-one-speaker-out (train on five speakers, test on the sixth: six folds), which asks whether a
model generalises to a voice it never heard.
"""

import dataclasses
import os
import struct

from minillm.backend import np
from minillm.data.audio_features import fixed_frames, log_mel_spectrogram, normalize_level
from minillm.data.datasets import dataset_path

SAMPLE_RATE = 8000
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
OFFICIAL_TEST_INDICES = 5  # indices 0-4 of every (digit, speaker) pair are the official test set


def read_wav(path, sample_rate=SAMPLE_RATE):
    """The samples of a mono 16-bit PCM WAV file as float32 in [-1, 1); any other format is a
    ValueError naming the file and what it holds."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file (it starts {data[:12]!r})")
    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        name, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if pos + 8 + size > len(data):
            raise ValueError(f"{path}: chunk {name!r} at byte {pos} claims {size} bytes, "
                             f"but only {len(data) - pos - 8} follow (truncated file?)")
        chunks.setdefault(name, data[pos + 8:pos + 8 + size])
        pos += 8 + size + size % 2
    for need in (b"fmt ", b"data"):
        if need not in chunks:
            raise ValueError(f"{path}: no {need.decode().strip()!r} chunk")
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise ValueError(f"{path}: the fmt chunk has {len(fmt)} bytes, expected at least 16")
    audio_format, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    found = (audio_format, channels, rate, bits)
    if found != (1, 1, sample_rate, 16):
        raise ValueError(f"{path}: format {audio_format}, {channels} channel(s), {rate} Hz, {bits}-bit; "
                         f"expected PCM (format 1), 1 channel, {sample_rate} Hz, 16-bit")
    samples = chunks[b"data"]
    if len(samples) % 2:
        raise ValueError(f"{path}: the data chunk has an odd number of bytes ({len(samples)}) for 16-bit samples")
    return np.frombuffer(samples, "<i2").astype(np.float32) / 32768.0


@dataclasses.dataclass(frozen=True)
class Recording:
    digit: int
    speaker: str
    index: int
    samples: object  # (n,) float32


def parse_name(name, path):
    """(digit, speaker, index) from `{digit}_{speaker}_{index}.wav`; anything else is a ValueError."""
    parts = name[:-len(".wav")].split("_") if name.endswith(".wav") else []
    if len(parts) != 3 or not (parts[0].isdigit() and len(parts[0]) == 1 and parts[2].isdigit()):
        raise ValueError(f"{path}: expected a name like 7_jackson_32.wav (digit_speaker_index.wav)")
    return int(parts[0]), parts[1], int(parts[2])


def load_fsdd(directory=None):
    """Every recording of recordings/, sorted by (speaker, digit, index)."""
    folder = dataset_path("fsdd", "fsdd/recordings", directory)
    out = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        digit, speaker, index = parse_name(name, path)
        out.append(Recording(digit, speaker, index, read_wav(path)))
    if not out:
        raise ValueError(f"{folder}: no recordings")
    return sorted(out, key=lambda r: (r.speaker, r.digit, r.index))


def fsdd_split(recordings, held_out_speaker=None):
    """{"train": indices, "held_out": indices} into recordings: the dataset's own split (indices 0-4
    held out) when held_out_speaker is None, else every recording of that speaker held out."""
    if held_out_speaker is None:
        held = [r.index < OFFICIAL_TEST_INDICES for r in recordings]
    else:
        speakers = sorted({r.speaker for r in recordings})
        if held_out_speaker not in speakers:
            raise ValueError(f"unknown speaker {held_out_speaker!r}; the recordings have {', '.join(speakers)}")
        held = [r.speaker == held_out_speaker for r in recordings]
    return {"train": [i for i, h in enumerate(held) if not h], "held_out": [i for i, h in enumerate(held) if h]}


def spectrograms(recordings, n_frames=48, n_mels=32):
    """(N, n_frames, n_mels) float32: each recording's log-mel spectrogram (32 ms frames, 16 ms apart),
    its level normalised to [-1, 1], the middle n_frames kept or centred in silence (-1)."""
    out = np.empty((len(recordings), n_frames, n_mels), dtype=np.float32)
    for i, r in enumerate(recordings):
        features = normalize_level(log_mel_spectrogram(r.samples, SAMPLE_RATE, n_fft=256, hop=128, n_mels=n_mels))
        out[i] = fixed_frames(features, n_frames, fill=-1.0)
    return out
