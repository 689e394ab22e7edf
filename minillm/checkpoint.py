"""Checkpoints: safetensors files, config.json, atomic directories.

safetensors is a simple, pickle-free format, written here from its spec:

    8 bytes   little-endian u64 N, the header's length
    N bytes   JSON: {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
                     "__metadata__": {str: str}}  (optional)
    the rest  every tensor's bytes, little-endian, C order, at its offsets

A checkpoint is a directory, written under a temporary name and renamed into
place, so a crash mid-save never leaves a half-written checkpoint, and the
next save or resume (recover_directory) finds the newest complete one. A model
directory is Hugging Face's: config.json (see Config) and model.safetensors;
`Pretrained` saves and loads one for every model class.
"""

import dataclasses
import json
import os
import shutil
import struct
import tempfile
import warnings

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
    """Call write_files(tmp_dir), then put tmp_dir in place of `directory` by renames.

    Every name a save uses, next to `directory` (here `checkpoint`):

        .tmp-checkpoint-XXXX   being written: incomplete until renamed
        checkpoint.new         complete (its files written and flushed), not yet in place
        checkpoint.old         the save being replaced, kept until the new one is in place

    The steps are: write .tmp-checkpoint-XXXX, rename it to checkpoint.new,
    checkpoint to checkpoint.old, checkpoint.new to checkpoint, delete
    checkpoint.old. A crash at any point leaves one complete save, which
    recover_directory (called first here) puts in place.
    """
    directory = os.path.abspath(directory)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    recover_directory(directory)
    tmp = tempfile.mkdtemp(prefix=_tmp_prefix(directory), dir=os.path.dirname(directory))
    try:
        write_files(tmp)
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        os.rename(tmp, directory + ".new")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _put_new_in_place(directory)


def recover_directory(directory):
    """Finish or undo a save a crash interrupted; `directory` if a save is there now, else None.

    The newest complete save wins: checkpoint.new if there is one (the crash
    came after it was complete), else checkpoint, else checkpoint.old (the
    crash came between the two renames). Incomplete .tmp-checkpoint-*
    directories and a superseded checkpoint.old are deleted.
    """
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        return None
    for name in os.listdir(parent):
        if name.startswith(_tmp_prefix(directory)):
            shutil.rmtree(os.path.join(parent, name))
    if os.path.exists(directory + ".new"):
        _put_new_in_place(directory)
    elif not os.path.exists(directory) and os.path.exists(directory + ".old"):
        os.rename(directory + ".old", directory)
    shutil.rmtree(directory + ".old", ignore_errors=True)
    return directory if os.path.exists(directory) else None


def _tmp_prefix(directory):
    return ".tmp-" + os.path.basename(directory) + "-"


def _put_new_in_place(directory):
    """The last steps of a save: checkpoint -> checkpoint.old, checkpoint.new -> checkpoint, delete .old."""
    old = directory + ".old"
    if os.path.exists(directory):
        shutil.rmtree(old, ignore_errors=True)  # left by a crash after its save was in place
        os.rename(directory, old)
    os.rename(directory + ".new", directory)
    shutil.rmtree(old, ignore_errors=True)


def cache_dir():
    """A writable directory for derived files (tokenized arrays, vocabularies, unpacked checkpoints):
    $MINILLM_CACHE, else ~/.cache/minillm."""
    path = os.environ.get("MINILLM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minillm")
    os.makedirs(path, exist_ok=True)
    return path


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


class Config:
    """config.json for a config dataclass, with one rule for the keys a file holds.

    A subclass is a dataclass whose fields are config.json keys, names in
    `required` the fields that fix the architecture (the weights' shapes),
    and names in `checked` ({key: accepted values}) the keys that change the
    math though only one way of it is implemented here (model_type, the
    activation, the position encoding...). to_dict() writes every field and
    every checked key (a checked key that is not a field at its first accepted
    value). from_dict(d, source) reads:

        a required key        must be there: the field defaults are for building
                              new models, and a saved model read with them would
                              be another model (Hugging Face's files hold them all);
        a field's key         sets the field;
        a checked key         must hold an accepted value; absent, it is the
                              first one (what transformers assumes then);
        any other key         is ignored: transformers writes many that do not
                              change these models (torch_dtype, transformers_version,
                              _name_or_path, id2label, ...), and task models add their own.

    Errors, a value __post_init__ rejects included, name `source`.
    """

    required = ()
    checked = {}

    def to_dict(self):
        return {**{key: accepted[0] for key, accepted in self.checked.items()}, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d, source="config.json"):
        for key, accepted in cls.checked.items():
            if d.get(key, accepted[0]) not in accepted:
                raise ValueError(f"{source}: {key} is {d[key]!r}, expected {' or '.join(map(repr, accepted))}")
        missing = [key for key in cls.required if key not in d]
        if missing:
            keys = "key" if len(missing) == 1 else "keys"
            raise ValueError(f"{source}: missing required {keys} {', '.join(map(repr, missing))}")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None


class Pretrained:
    """save_pretrained / from_pretrained / load_pretrained_state, for a Module with a `config`.

    A model class states only what differs from the defaults:

        config_class                 its Config dataclass
        architecture                 written as config.json's `architectures` (None: not written)
        config_dict()                config.json's contents (default: config.to_dict() + architectures)
        checkpoint_state()           the tensors saved (default: state_dict())
        state_from_checkpoint(t)     a checkpoint's tensors under the model's names (default: as they are)
        from_config_dict(d, source)  a fresh model for config.json's contents (default: cls(config))
        missing_ok                   True: parameters a checkpoint lacks keep their fresh values,
                                     listed in `fresh_parameters` and a warning (default: an error)
    """

    config_class = architecture = None
    missing_ok = False

    def config_dict(self):
        d = self.config.to_dict()
        if self.architecture:
            d["architectures"] = [self.architecture]
        return d

    def checkpoint_state(self):
        return self.state_dict()

    @staticmethod
    def state_from_checkpoint(tensors):
        return tensors

    @classmethod
    def from_config_dict(cls, config, source, dtype="float32"):
        return cls(cls.config_class.from_dict(config, source), dtype=dtype)

    def save_pretrained(self, directory, extra_files=None, state=None):
        """config.json + model.safetensors, atomically (see save_model_directory for extra_files); `state`:
        the tensors, when not checkpoint_state() (a model split across ranks passes its parts joined)."""
        save_model_directory(directory, self.config_dict(), self.checkpoint_state() if state is None else state,
                             extra_files)

    def load_pretrained_state(self, tensors):
        """Load a checkpoint's tensors into the parameters; returns the names of those it lacked."""
        return self.load_state_dict(self.state_from_checkpoint(tensors), strict=not self.missing_ok)

    @classmethod
    def from_pretrained(cls, directory, dtype="float32"):
        """The model a directory holds: ours, or one saved by transformers. Errors name the file."""
        config_path = os.path.join(directory, "config.json")
        model = cls.from_config_dict(read_json(config_path), config_path, dtype)
        path = os.path.join(directory, "model.safetensors")
        try:
            model.fresh_parameters = model.load_pretrained_state(load_safetensors(path))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        if model.fresh_parameters:
            warnings.warn(f"{path}: initialised fresh (not in the checkpoint): {', '.join(model.fresh_parameters)}",
                          stacklevel=2)
        return model
