"""MNIST: IDX parsing (magic numbers, sizes, errors that name the file), the real test set, the split."""

import gzip
import struct

import pytest

from minillm.backend import np
from minillm.data.mnist import IMAGE_MAGIC, LABEL_MAGIC, load_mnist, mnist_split, parse_idx, read_idx


def _idx(magic, shape, payload):
    return struct.pack(f">I{len(shape)}I", magic, *shape) + bytes(payload)


def test_parse_idx_reads_shape_and_bytes(tmp_path):
    data = _idx(IMAGE_MAGIC, (2, 2, 3), range(12))
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(data))
    images = read_idx(str(path), IMAGE_MAGIC)
    assert images.shape == (2, 2, 3) and images.dtype == np.uint8
    assert images[1, 0].tolist() == [6, 7, 8]
    assert parse_idx(_idx(LABEL_MAGIC, (3,), [7, 2, 1]), "l", LABEL_MAGIC).tolist() == [7, 2, 1]


def test_parse_idx_errors_name_the_file():
    with pytest.raises(ValueError, match=r"labels\.idx: magic number 2051 \(0x00000803\), expected 2049"):
        parse_idx(_idx(IMAGE_MAGIC, (1, 1, 1), [0]), "labels.idx", LABEL_MAGIC)
    with pytest.raises(ValueError, match=r"im\.idx: 27 bytes, but dimensions \(2, 2, 3\) need 28"):
        parse_idx(_idx(IMAGE_MAGIC, (2, 2, 3), range(11)), "im.idx", IMAGE_MAGIC)
    with pytest.raises(ValueError, match="im.idx: 2 bytes is too short"):
        parse_idx(b"\x00\x00", "im.idx", IMAGE_MAGIC)


def test_corrupt_gzip_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(_idx(LABEL_MAGIC, (3,), [1, 2, 3]))[:-6])
    with pytest.raises(ValueError, match="broken.gz: not a readable gzip file"):
        read_idx(str(path), LABEL_MAGIC)


def test_real_mnist_test_set_and_split():
    images, labels = load_mnist()
    assert images.shape == (10_000, 28, 28) and labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(images.mean() - 33.79) < 0.01
    split = mnist_split(len(labels))
    assert len(split["train"]) == 8000 and len(split["held_out"]) == 2000
    assert (split["held_out"] % 5 == 0).all() and not set(split["train"]) & set(split["held_out"])
    counts = np.bincount(labels[split["held_out"]], minlength=10)
    assert counts.min() == 158 and counts.max() == 242  # the data README's figures
