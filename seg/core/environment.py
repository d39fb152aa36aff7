"""Environment variables set for one block and put back afterwards (dbt reads its settings from the environment;
MLflow exports its store URI to it, which would leak into later calls in the same process)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def restored(names: Iterable[str]) -> Iterator[None]:
    """When the block ends, the variables `names` are as they were before it (set, changed or removed inside)."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def setting(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in the environment for the duration of the block only."""
    with restored(values):
        os.environ.update(values)
        yield
