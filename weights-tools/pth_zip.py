"""Read PyTorch zip-format checkpoints (``torch.save`` since PyTorch 1.6) without torch.

A ``.pth`` file is a zip archive ``<prefix>/data.pkl`` (a pickle whose tensors are
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` calls, the storages being
persistent ids ``("storage", torch.<Type>Storage, key, location, numel)``), ``<prefix>/data/<key>``
(the raw little-endian bytes of each storage) and ``<prefix>/byteorder`` (spec §8.1).

This reader never imports or runs anything named in the pickle: known tensor/container globals
map to small local functions, every other global (optimizer or scheduler classes, numpy scalars,
...) becomes an inert placeholder that only records its arguments. Storages are read lazily, so
the optimizer state of a training checkpoint is never loaded. Needs numpy.
"""

import collections
import pickle
import zipfile

import numpy as np

# Storage class name -> numpy dtype ("bf16" is handled by hand: numpy has no bfloat16).
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class PthFormatError(ValueError):
    """The file is not a readable zip-format torch checkpoint."""


class StorageType:
    """Stands for ``torch.<name>`` storage classes inside persistent ids."""

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class StorageRef:
    """One storage of the archive, read on first use."""

    def __init__(self, archive, member, dtype, numel):
        self.archive, self.member, self.dtype, self.numel = archive, member, dtype, int(numel)
        self._array = None

    def array(self):
        if self._array is None:
            raw = self.archive.read(self.member)
            if self.dtype == "bf16":
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                arr = bits.view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=self.dtype)
            if arr.size < self.numel:
                raise PthFormatError(f"{self.member}: {arr.size} values stored, {self.numel} declared")
            self._array = arr
        return self._array


class LazyTensor:
    """A tensor view (offset, size, stride) into a storage; data read only by ``numpy()``."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset = storage, int(offset)
        self.shape, self.stride = tuple(int(s) for s in shape), tuple(int(s) for s in stride)

    def numpy(self):
        arr = self.storage.array()
        if any(d == 0 for d in self.shape):
            return np.zeros(self.shape, dtype=arr.dtype)
        last = self.offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride))
        if self.offset < 0 or last >= arr.size:
            raise PthFormatError(f"{self.storage.member}: view {self.shape}/{self.stride}+{self.offset} exceeds the storage")
        view = np.lib.stride_tricks.as_strided(
            arr[self.offset:], shape=self.shape, strides=[s * arr.itemsize for s in self.stride], writeable=False
        )
        return np.array(view)

    def f32_bytes(self):
        return np.ascontiguousarray(self.numpy(), dtype="<f4").tobytes()


class Opaque:
    """Inert stand-in for any global the reader does not know (never executed)."""

    origin = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):  # dict subclasses are filled with SETITEMS
        if self.state is None:
            self.state = {}
        self.state[key] = value

    def append(self, value):  # list subclasses are filled with APPENDS
        self.args = self.args + (value,)

    def extend(self, values):
        self.args = self.args + tuple(values)

    def __repr__(self):
        return f"<opaque {self.origin}>"


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *rest):
    return data


KNOWN_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, fileobj, archive, prefix):
        super().__init__(fileobj)
        self.archive, self.prefix = archive, prefix
        self.opaque_types = {}

    def find_class(self, module, name):
        if (module, name) in KNOWN_GLOBALS:
            return KNOWN_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        key = f"{module}.{name}"
        if key not in self.opaque_types:
            self.opaque_types[key] = type(name, (Opaque,), {"origin": key})
        return self.opaque_types[key]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise PthFormatError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType):
            raise PthFormatError(f"storage {key}: unsupported storage type {storage_type!r}")
        return StorageRef(self.archive, f"{self.prefix}data/{key}", storage_type.dtype, numel)


def load(path):
    """The unpickled object of a zip-format checkpoint, tensors as ``LazyTensor``."""
    if not zipfile.is_zipfile(path):
        raise PthFormatError(
            f"{path}: not a zip-format torch checkpoint (PyTorch < 1.6 legacy format?); "
            "convert it with --reader torch on a machine with torch"
        )
    archive = zipfile.ZipFile(path)
    pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise PthFormatError(f"{path}: expected one <prefix>/data.pkl record, found {pkl}")
    prefix = pkl[0][: -len("data.pkl")]
    order = prefix + "byteorder"
    if order in archive.namelist() and archive.read(order).strip() != b"little":
        raise PthFormatError(f"{path}: big-endian checkpoint, not supported")
    with archive.open(pkl[0]) as f:
        return _Unpickler(f, archive, prefix).load()
