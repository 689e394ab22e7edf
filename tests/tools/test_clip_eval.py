"""clip_eval on two tiny CLIPs: every number present and in range, the PNG a valid file, clear errors."""

import json
import struct
import zlib

import pytest

from minillm.backend import np
from minillm.cli.errors import UsageError
from minillm.tools import clip_eval


def test_png_is_what_a_reader_decodes(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    clip_eval.write_png(str(tmp_path / "a.png"), pixels)
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (4, 3)
    length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    rows = zlib.decompress(data[41:41 + length])
    assert rows == b"".join(b"\x00" + pixels[r].tobytes() for r in range(3))


def test_report_of_tiny_models(tiny_clips, tmp_path):
    image, speech, speaker = tiny_clips["image"], tiny_clips["speech"], tiny_clips["speaker"]
    report = clip_eval.main(["--image", image, "--speech", speech, "--held-out-speaker", speaker,
                             "--out", str(tmp_path / "eval"), "--probe-steps", "5"])
    assert (report["held_out_images"], report["held_out_recordings"]) == (2000, 500)
    assert set(report["retrieval"]) == {"image->text", "text->image", "speech->text", "text->speech",
                                        "speech->image", "image->speech"}
    for scores in report["retrieval"].values():
        assert 0.0 <= scores["R@1"] <= scores["R@5"] <= 1.0
    assert 0.0 <= report["speech_linear_probe"]["accuracy"] <= 1.0
    assert [row["digit"] for row in report["picture"]] == [0, 3, 5, 7, 9]
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UsageError, match="--image must hold an image CLIP"):
        clip_eval.main(["--image", speech, "--speech", image, "--out", str(tmp_path / "x")])
