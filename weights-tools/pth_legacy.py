"""Read PyTorch's legacy (pre-1.6, non-zip) ``torch.save`` files without torch.

The `lpips` package ships its v0.1 linear layers (``lpips/weights/v0.1/{alex,vgg}.pth``) in this
format. The file is a sequence of pickles followed by raw data:

1. magic number ``0x1950a86a20f9469cfc6c``, 2. protocol version (1001), 3. sys info (dict),
4. the object, whose tensors are ``torch._utils._rebuild_tensor_v2(storage, offset, size,
   stride, ...)`` calls and whose storages are persistent ids
   ``("storage", torch.<Type>Storage, key, location, numel, view_metadata)``,
5. the list of storage keys in the order their data follows,
6. per storage: an int64 little-endian element count, then the raw little-endian elements.

Like ``pth_zip.py`` (whose placeholder types and tensor views it reuses), nothing named in the
pickle is imported or run. Needs numpy.
"""

import io
import pickle
import struct

import numpy as np

from pth_zip import KNOWN_GLOBALS, STORAGE_DTYPES, LazyTensor, Opaque, PthFormatError, StorageType

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001


class LegacyStorage:
    """A storage whose bytes follow the pickles; filled in once the key list is read."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, int(numel)
        self.member = f"storage {key}"
        self._array = None

    def array(self):
        if self._array is None:
            raise PthFormatError(f"storage {self.key}: its data was never read")
        return self._array


class _Unpickler(pickle.Unpickler):
    def __init__(self, fileobj, storages):
        super().__init__(fileobj)
        self.storages = storages
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
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise PthFormatError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, StorageType) or storage_type.dtype == "bf16":
            raise PthFormatError(f"storage {key}: unsupported storage type {storage_type!r}")
        if view is not None:
            raise PthFormatError(f"storage {key}: storage views are not supported")
        if key not in self.storages:
            self.storages[key] = LegacyStorage(key, storage_type.dtype, numel)
        return self.storages[key]


def _plain_load(f):
    """A pickle holding only plain values (magic, protocol, sys info, key list)."""

    class Plain(pickle.Unpickler):
        def find_class(self, module, name):
            raise PthFormatError(f"unexpected global {module}.{name} in a header pickle")

    return Plain(f).load()


def load(path):
    """The unpickled object of a legacy ``torch.save`` file, tensors as ``LazyTensor``."""
    with open(path, "rb") as fh:
        f = io.BytesIO(fh.read())
    try:
        magic = _plain_load(f)
    except Exception as e:  # not a pickle at all (a zip file, random bytes)
        raise PthFormatError(f"{path}: not a legacy torch file ({e})") from None
    if magic != MAGIC:
        raise PthFormatError(f"{path}: not a legacy torch file (magic {magic!r})")
    if _plain_load(f) != PROTOCOL:
        raise PthFormatError(f"{path}: unsupported legacy protocol")
    sys_info = _plain_load(f)
    if not sys_info.get("little_endian", True):
        raise PthFormatError(f"{path}: big-endian file, not supported")
    storages = {}
    obj = _Unpickler(f, storages).load()
    for key in _plain_load(f):
        s = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != s.numel:
            raise PthFormatError(f"{path}: storage {key} holds {numel} values, {s.numel} declared")
        nbytes = numel * np.dtype(s.dtype).itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise PthFormatError(f"{path}: storage {key} is truncated")
        s._array = np.frombuffer(raw, dtype=s.dtype)
    return obj
