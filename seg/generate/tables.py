"""Arrow schemas derived from the data contract, and table assembly in contract column order."""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa

from seg.core.contract import load_contract

ARROW_TYPES = {
    "varchar": pa.string(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "json": pa.string(),
}


@cache
def schema(source: str) -> pa.Schema:
    src = load_contract().source(source)
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=True) for c in src.columns.values()])


def to_table(source: str, columns: dict[str, object]) -> pa.Table:
    """Columns (Arrow arrays or numpy arrays) -> a table with exactly the contract's columns and types."""
    sch = schema(source)
    missing = [f.name for f in sch if f.name not in columns]
    extra = [k for k in columns if k not in sch.names]
    if missing or extra:
        raise ValueError(f"{source}: columns missing {missing}, unexpected {extra}")
    arrays = []
    for f in sch:
        col = columns[f.name]
        arr = col if isinstance(col, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(col))
        if arr.type != f.type:
            arr = arr.cast(f.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=sch)
