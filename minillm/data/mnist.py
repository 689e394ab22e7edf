"""MNIST: the IDX file format, the test set's 10,000 digits, and the split this project trains on.

An IDX file (LeCun's format) is big-endian throughout:

    4 bytes   magic: 0x00 0x00, the element type (0x08 = unsigned byte), the number of dimensions
    4 bytes   the size of each dimension (one 32-bit integer per dimension)
    the rest  the elements, row-major

so images are magic 2051 (0x00000803: bytes, 3 dimensions) with sizes (N, 28, 28), and labels are
magic 2049 (0x00000801: bytes, 1 dimension) with size (N,). The files here are gzipped.

Only the official test set is available (see the data README), so it is split by index: every fifth
image (index % 5 == 0, 2,000 images) is held out and the other 8,000 train. The first and last 5,000
come from different writers (NIST's SD-3 and SD-1), and taking every fifth keeps both in each part.
"""

import gzip
import struct

from minillm.backend import np
from minillm.data.datasets import dataset_path

IMAGES = "mnist/t10k-images-idx3-ubyte.gz"
LABELS = "mnist/t10k-labels-idx1-ubyte.gz"
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
HELD_OUT_EVERY = 5  # index % 5 == 0 is held out


def parse_idx(data, path, magic):
    """The uint8 array an IDX file's bytes hold; a wrong magic number or size is a ValueError naming path."""
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX file (a 4-byte magic number first)")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise ValueError(f"{path}: magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x}); "
                         f"is this the right IDX file?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: {len(data)} bytes is too short for the {ndim} dimension sizes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, but dimensions {shape} need {expected} "
                         f"({header}-byte header + one byte each)")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_idx(path, magic):
    """A gzipped (or plain) IDX file as a uint8 array."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip's magic
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable gzip file ({err})") from None
    return parse_idx(data, path, magic)


def load_mnist(directory=None):
    """(images (N, 28, 28) uint8, labels (N,) int64) of the MNIST test set."""
    images_path, labels_path = dataset_path("mnist", IMAGES, directory), dataset_path("mnist", LABELS, directory)
    images, labels = read_idx(images_path, IMAGE_MAGIC), read_idx(labels_path, LABEL_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: label {labels.max()} is not a digit 0-9")
    return images, labels.astype(np.int64)


def mnist_split(n):
    """{"train": indices, "held_out": indices} of n images: held out are those with index % 5 == 0."""
    index = np.arange(n)
    return {"train": index[index % HELD_OUT_EVERY != 0], "held_out": index[index % HELD_OUT_EVERY == 0]}


def image_pixels(images):
    """uint8 images -> float32 in [0, 1], (N, 28, 28)."""
    return images.astype(np.float32) / 255.0
