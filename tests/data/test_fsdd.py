"""FSDD: WAV files read from the RIFF spec, format errors that name the file, the two splits."""

import struct

import pytest

from minillm.backend import np
from minillm.data.fsdd import SPEAKERS, fsdd_split, load_fsdd, parse_name, read_wav


def _wav(samples, rate=8000, channels=1, bits=16, fmt=1):
    data = np.asarray(samples, "<i2").tobytes()
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"LIST" + struct.pack("<I", 3) + b"abc\x00"
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_read_wav_scales_samples_and_skips_other_chunks(tmp_path):
    path = tmp_path / "0_x_0.wav"
    path.write_bytes(_wav([0, 16384, -32768, 32767]))
    x = read_wav(str(path))
    assert x.dtype == np.float32 and x.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]


@pytest.mark.parametrize("blob, message", [
    (_wav([1], rate=16000), r"format 1, 1 channel\(s\), 16000 Hz, 16-bit; expected PCM \(format 1\), 1 channel"),
    (_wav([1, 2], channels=2), "2 channel"),
    (_wav([1], fmt=3), "format 3"),
    (b"RIFX" + b"\x00" * 40, "not a RIFF/WAVE file"),
    (_wav([1, 2, 3])[:-2], "chunk b'data' at byte .* claims 6 bytes, but only 4 follow"),
    (_wav([1])[:36], "no 'data' chunk"),
])
def test_wav_format_errors_name_the_file(tmp_path, blob, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=f"bad.wav: .*{message}"):
        read_wav(str(path))


def test_parse_name():
    assert parse_name("7_jackson_32.wav", "p") == (7, "jackson", 32)
    with pytest.raises(ValueError, match="notes.txt: expected a name like 7_jackson_32.wav"):
        parse_name("notes.txt", "notes.txt")


def test_real_recordings_and_splits():
    recordings = load_fsdd()
    assert len(recordings) == 3000 and sorted({r.speaker for r in recordings}) == list(SPEAKERS)
    assert np.bincount([r.digit for r in recordings]).tolist() == [300] * 10
    official = fsdd_split(recordings)
    assert (len(official["train"]), len(official["held_out"])) == (2700, 300)
    assert all(recordings[i].index < 5 for i in official["held_out"])
    fold = fsdd_split(recordings, "theo")
    assert len(fold["held_out"]) == 500 and {recordings[i].speaker for i in fold["held_out"]} == {"theo"}
    assert "theo" not in {recordings[i].speaker for i in fold["train"]}
    with pytest.raises(ValueError, match="unknown speaker 'bob'"):
        fsdd_split(recordings, "bob")
