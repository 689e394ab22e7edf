"""safetensors written and read from the spec; atomic checkpoint directories."""

import json
import os
import struct

import pytest
from hypothesis import given, strategies as st

from minillm.backend import np
from minillm.checkpoint import read_safetensors, save_directory_atomically, save_safetensors


@given(st.sampled_from(["float32", "float64", "float16", "int64", "int32", "uint8", "bool"]),
       st.lists(st.integers(0, 4), min_size=0, max_size=3))
def test_round_trip(tmp_path_factory, dtype, shape):
    path = tmp_path_factory.mktemp("st") / "m.safetensors"
    a = (np.random.default_rng(0).standard_normal(shape) * 5).astype(dtype)
    save_safetensors(path, {"a": a, "b.c": np.arange(3, dtype="float32")}, {"format": "pt"})
    tensors, meta = read_safetensors(path)
    assert meta == {"format": "pt"} and tensors["a"].dtype == a.dtype and tensors["a"].shape == a.shape
    assert (tensors["a"] == a).all() and tensors["b.c"].tolist() == [0.0, 1.0, 2.0]


def test_layout_follows_the_spec(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"x": np.array([1.0, 2.0], dtype="float32")})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header == {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    assert raw[8 + n:] == struct.pack("<2f", 1.0, 2.0)


def test_bfloat16_is_read_as_float32(tmp_path):
    head = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    bits = (np.array([1.5, -2.0], dtype="float32").view("uint32") >> 16).astype("<u2").tobytes()
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bits)
    assert read_safetensors(tmp_path / "b.safetensors")[0]["w"].tolist() == [1.5, -2.0]


SHORT = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}'  # 4 floats need 16 bytes


@pytest.mark.parametrize("content, message", [
    (b"abc", "too short"),
    (struct.pack("<Q", 100) + b"{}", "runs past the end"),
    (struct.pack("<Q", 2) + b"{]", "not valid JSON"),
    (struct.pack("<Q", len(SHORT)) + SHORT + b"\0" * 8, "do not fit"),
])
def test_malformed_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_safetensors(path)
    assert "bad.safetensors" in str(info.value)


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path):
    target = tmp_path / "ckpt"
    save_directory_atomically(target, lambda d: open(os.path.join(d, "a.txt"), "w").write("one"))

    def crash(d):
        open(os.path.join(d, "a.txt"), "w").write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_directory_atomically(target, crash)
    assert (target / "a.txt").read_text() == "one"
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    save_directory_atomically(target, lambda d: open(os.path.join(d, "a.txt"), "w").write("two"))
    assert (target / "a.txt").read_text() == "two" and sorted(os.listdir(tmp_path)) == ["ckpt"]
