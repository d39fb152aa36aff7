"""Vectorised construction of Arrow string columns (no per-row Python).

Identifiers have a fixed width, so they are built as a (rows x width) byte matrix and handed to Arrow as the
data buffer of a StringArray; variable strings are concatenated with Arrow compute kernels.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _validity(valid: np.ndarray | None) -> pa.Buffer | None:
    if valid is None:
        return None
    return pa.py_buffer(np.packbits(valid.astype(bool), bitorder="little"))


def from_matrix(mat: np.ndarray, valid: np.ndarray | None = None) -> pa.StringArray:
    """A (n x width) uint8 matrix of ASCII bytes -> StringArray of n strings of that width."""
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    n, width = mat.shape
    offsets = np.arange(n + 1, dtype=np.int64) * width
    if offsets[-1] < 2**31:
        typ, offsets = pa.string(), offsets.astype(np.int32)
    else:
        typ = pa.large_string()
    arr = pa.Array.from_buffers(typ, n, [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(mat)],
                                null_count=-1 if valid is not None else 0)
    return arr.cast(pa.string()) if typ != pa.string() else arr


def digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as a (n x width) uint8 matrix."""
    numbers = np.asarray(numbers, dtype=np.int64)
    out = np.empty((numbers.shape[0], width), dtype=np.uint8)
    rest = numbers.copy()
    for col in range(width - 1, -1, -1):
        out[:, col] = rest % 10 + 48
        rest //= 10
    return out


def hexdigits(numbers: np.ndarray, width: int = 16) -> np.ndarray:
    """Lowercase hex digits (zero padded, low `width` nibbles) as a (n x width) uint8 matrix."""
    numbers = np.asarray(numbers, dtype=np.uint64)
    out = np.empty((numbers.shape[0], width), dtype=np.uint8)
    for col in range(width):
        shift = np.uint64(4 * (width - 1 - col))
        out[:, col] = _HEX[((numbers >> shift) & np.uint64(15)).astype(np.intp)]
    return out


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.StringArray:
    """prefix + zero-padded number, e.g. prefixed_ids('C', [12], 8) -> 'C00000012'."""
    numbers = np.asarray(numbers, dtype=np.int64)
    pre = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    mat = np.empty((numbers.shape[0], len(pre) + width), dtype=np.uint8)
    mat[:, : len(pre)] = pre
    mat[:, len(pre):] = digits(numbers, width)
    return from_matrix(mat, valid)


def hex_ids(numbers: np.ndarray, width: int = 16, prefix: str = "") -> pa.StringArray:
    pre = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    numbers = np.asarray(numbers, dtype=np.uint64)
    mat = np.empty((numbers.shape[0], len(pre) + width), dtype=np.uint8)
    mat[:, : len(pre)] = pre
    mat[:, len(pre):] = hexdigits(numbers, width)
    return from_matrix(mat)


def take(values: pa.Array, idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """values[idx] as an Arrow array; rows where valid is False become null."""
    idx = np.asarray(idx, dtype=np.int64)
    if valid is None:
        return values.take(pa.array(idx))
    return values.take(pa.array(idx, mask=~np.asarray(valid, dtype=bool)))


def num_str(values: np.ndarray, decimals: int | None = None) -> pa.Array:
    """Numbers as their shortest decimal text (JSON-compatible), rounded to `decimals` when given."""
    values = np.asarray(values)
    if decimals is not None:
        values = np.round(values.astype(np.float64), decimals)
    return pc.cast(pa.array(values), pa.string())


def join(*parts) -> pa.Array:
    """Element-wise concatenation of string arrays and Python str scalars (a null part gives null)."""
    return pc.binary_join_element_wise(*parts, "")


def timestamps(us: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    us = np.asarray(us, dtype=np.int64)
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    return pa.array(us, type=pa.timestamp("us"), mask=mask)


def iso(us: np.ndarray) -> pa.Array:
    """Microsecond timestamps as 'YYYY-MM-DDTHH:MM:SS[.ffffff]' strings (for JSON evidence)."""
    return pc.strftime(timestamps(us), format="%Y-%m-%dT%H:%M:%S")
