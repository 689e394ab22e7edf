"""Checkpoints: safetensors files, config.json, atomic directories.

safetensors is a simple, pickle-free format, written here from its spec:

    8 bytes   little-endian u64 N, the header's length
    N bytes   JSON: {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
                     "__metadata__": {str: str}}  (optional)
    the rest  every tensor's bytes, little-endian, C order, at its offsets

A checkpoint is a directory, written under a temporary name and renamed into
place, so a crash mid-save never leaves a half-written checkpoint.
"""

import json
import os
import shutil
import struct
import tempfile

from minillm.backend import np, to_host

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "BOOL": np.bool_,
}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """Write {name: array} (host or device arrays) to a .safetensors file."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(to_host(tensors[name]), order="C")  # keeps 0-d arrays 0-d
        if a.dtype not in _NAMES:
            raise TypeError(f"{path}: tensor {name!r} has dtype {a.dtype}, which safetensors cannot hold")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for data in blobs:
            f.write(data)


def load_safetensors(path):
    """Read a .safetensors file into {name: host array}; metadata is dropped."""
    return read_safetensors(path)[0]


def read_safetensors(path):
    """({name: host array}, metadata dict). Malformed files raise ValueError naming the file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as err:
        raise ValueError(f"{path}: header is not valid JSON ({err})") from err
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in header.items():
        dtype_name = info.get("dtype")
        begin, end = info.get("data_offsets", (0, -1))
        shape = tuple(info.get("shape", ()))
        if dtype_name == "BF16":  # bfloat16 is the top half of a float32
            bits = np.frombuffer(body[begin:end], dtype="<u2").astype(np.uint32) << 16
            a = bits.view(np.float32)
        elif dtype_name in _DTYPES:
            a = np.frombuffer(body[begin:end], dtype=np.dtype(_DTYPES[dtype_name]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype_name!r}")
        if not 0 <= begin <= end <= len(body) or a.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name!r} has offsets {begin}..{end} that do not fit shape {shape}")
        tensors[name] = a.reshape(shape).astype(a.dtype.newbyteorder("="))
    return tensors, metadata


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found") from None
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save_directory_atomically(directory, write_files):
    """Call write_files(tmp_dir) and then move tmp_dir to `directory` in one rename.

    An existing checkpoint at `directory` is replaced only after the new one
    is complete, so at every instant one whole checkpoint exists.
    """
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(directory) + "-", dir=parent)
    try:
        write_files(tmp)
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        old = None
        if os.path.exists(directory):
            old = directory + ".old"
            if os.path.exists(old):
                shutil.rmtree(old)
            os.rename(directory, old)
        os.rename(tmp, directory)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model_directory(directory, config, state, extra_files=None):
    """A Hugging Face model directory, atomically: config.json, model.safetensors, extras.

    extra_files(tmp_dir), when given, writes more files (tokenizer, trainer
    state, optimizer moments) into the same directory before it is renamed.
    """
    def write(tmp):
        write_json(os.path.join(tmp, "config.json"), config)
        save_safetensors(os.path.join(tmp, "model.safetensors"), state, {"format": "pt"})
        if extra_files:
            extra_files(tmp)

    save_directory_atomically(directory, write)
