"""The model a day's run assigns with, and whether it becomes `champion` once the segments gate has passed.

The daily run chooses a model (`train` registers a new version, `load_champion` reuses one), then assigns,
gates and only then promotes. The choice is written here by the choosing step and read by `assign` and
`promote`, so the alias moves after the gate and a failed gate leaves the champion where it was:

    ml_stage.model_choice  one row per lens: segmentation, as_of_date, model_version (what assign uses),
                           promote (true: make it the lens's champion after its segments gate), reason (why
                           this model), chosen_at

This module is its one writer (seg/core/catalog.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from seg.core.config import Settings
from seg.core.warehouse import column_exists, connect, table_exists

TABLE = "ml_stage.model_choice"


@dataclass(frozen=True)
class ModelChoice:
    as_of_date: dt.date
    model_version: str
    promote: bool
    reason: str


COLUMNS_DDL = ("segmentation varchar, as_of_date date, model_version varchar, promote boolean, reason varchar, "
               "chosen_at timestamp")


def record(settings: Settings, choice: ModelChoice) -> ModelChoice:
    """Replace the lens's recorded choice with `choice` (the choice of the lens's run in progress)."""
    with connect(settings) as con:
        con.execute("create schema if not exists ml_stage")
        if table_exists(con, "ml_stage", "model_choice") and not _lensed(con):
            con.execute(f"drop table {TABLE}")  # the one-row layout before lenses: it held one run's choice
        con.execute(f"create table if not exists {TABLE} ({COLUMNS_DDL})")
        con.execute("begin transaction")
        con.execute(f"delete from {TABLE} where segmentation = ?", [settings.lens])
        con.execute(f"insert into {TABLE} values (?, ?, ?, ?, ?, now()::timestamp)",
                    [settings.lens, choice.as_of_date, choice.model_version, choice.promote, choice.reason])
        con.execute("commit")
    return choice


def read(settings: Settings, as_of_date: dt.date) -> ModelChoice:
    """The lens's choice recorded for `as_of_date`; raises when the choosing step has not run for that date."""
    with connect(settings, read_only=True) as con:
        row = None
        if table_exists(con, "ml_stage", "model_choice") and _lensed(con):
            row = con.execute(f"select as_of_date, model_version, promote, reason from {TABLE} "
                              "where segmentation = ?", [settings.lens]).fetchone()
    if row is None or row[0] != as_of_date:
        held = "nothing" if row is None else f"the choice for {row[0]}"
        raise RuntimeError(f"{TABLE} holds {held} for lens {settings.lens}, not a model for {as_of_date}: "
                           "run train or load_champion first")
    return ModelChoice(row[0], str(row[1]), bool(row[2]), str(row[3]))


def _lensed(con) -> bool:
    return column_exists(con, "ml_stage", "model_choice", "segmentation")
