"""The one safetensors writer of the weights tools (standard library only).

``write(path, tensors, metadata)`` writes ``tensors``, an iterable of ``(name, dtype, shape, data)``,
in that order: ``dtype`` a safetensors code (``"F32"``, ``"F16"``, ``"BF16"``, ``"U32"``, ...),
``shape`` a list of ints, ``data`` the little-endian bytes or a function returning them (called
once, while writing, so a converter never holds every tensor's bytes at once). The header is
padded with spaces to a multiple of 8 bytes, as the format recommends.

The write is atomic: a temporary file in the target's folder, flushed and fsynced, renamed over
the target, then the folder fsynced. An error (a tensor whose bytes do not match its shape, a
full disk) leaves any earlier file at ``path`` as it was and no temporary file behind.
"""

import json
import os
import struct

ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class SizeError(ValueError):
    """A tensor's bytes do not match its dtype and shape."""


def byte_size(dtype, shape):
    """Bytes of a tensor of ``dtype`` and ``shape``."""
    if dtype not in ITEM_SIZES:
        raise SizeError(f"unknown safetensors dtype {dtype!r}")
    n = ITEM_SIZES[dtype]
    for d in shape:
        n *= d
    return n


def header_bytes(tensors, metadata):
    """The length-prefixed JSON header for ``tensors`` laid out back to back in their order."""
    header, offset = {"__metadata__": metadata}, 0
    for name, dtype, shape, _ in tensors:
        n = byte_size(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def write(path, tensors, metadata):
    """Write ``tensors`` with ``metadata`` to ``path`` atomically (see the module docs)."""
    tensors = list(tensors)
    head = header_bytes(tensors, metadata)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(head)
            for name, dtype, shape, data in tensors:
                blob = data() if callable(data) else data
                if len(blob) != byte_size(dtype, shape):
                    raise SizeError(f"{name}: {len(blob)} bytes for {dtype} {list(shape)}")
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
