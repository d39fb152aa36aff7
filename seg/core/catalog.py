"""Every relation of the warehouse, its grain, and the ONE module that writes it.

Other modules read these relations; only the writer creates, replaces, inserts into or deletes from one
(tests/core/test_catalog.py checks the SQL of the code against this list). dbt's models are written by dbt into
the audit schema and published by seg.transform.wap, which is therefore the writer of every published dbt mart.
Names are the same as before the package redesign; code that writes a relation takes its name from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    name: str  # schema.table
    writer: str  # the module that writes it ("dbt" for models dbt materialises itself)
    grain: str

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]


DBT = "dbt"  # dbt models: staging views, intermediate tables, the marts' audit copies
WAP = "seg.transform.wap"
SEGMENTS = "seg.transform.segments"
ASSIGN = "ml.assign"
MODEL_CHOICE = "ml.model_choice"
ONLINE = "ml.online"
DRIFT = "ml.drift.monitor"
GATES = "expectations.gates"
INGEST_PROFILE = "expectations.suites.raw__ingest"
TRIGGER_TABLES = "seg.triggers.tables"

RELATIONS: tuple[Relation, ...] = (
    # dbt marts, published from marts_audit after the gates
    Relation("marts.customers", WAP, "one row per person"),
    Relation("marts.orders", WAP, "one row per order"),
    Relation("marts.sessions", WAP, "one row per web/app session"),
    Relation("marts.customer_rfm", WAP, "one row per person"),
    Relation("marts.customer_rfm_history", WAP, "one row per person and as-of date"),
    Relation("marts.customer_features", WAP, "one row per person"),
    Relation("marts.customer_features_history", WAP, "one row per person and as-of date"),
    Relation("marts.customer_behaviour_features", WAP, "one row per person: trailing-window behaviour"),
    Relation("marts.customer_behaviour_features_history", WAP, "one row per person and as-of date"),
    Relation("marts.identities", WAP, "one row per source identifier (customer id, email hash, anonymous id)"),
    # write-audit-publish records: which build each step wrote, which build each gate passed
    Relation("marts_audit._builds", WAP, "one row per build step into the audit schema (its current build id)"),
    Relation("marts_audit._audits", WAP, "one row per audited gate (the build id it passed)"),
    # the model's output and its publication (write-audit-publish for segments)
    Relation("ml_stage.customer_assignments", ASSIGN, "one row per person and lens: the day's model's segment, audited"),
    Relation("ml_stage.segment_profiles", ASSIGN, "one row per lens and segment of the assigning model"),
    Relation("ml_stage.model_choice", MODEL_CHOICE, "one row per lens: the model of the run in progress, promote or not"),
    Relation("ml_stage.online_centroids", ONLINE, "one row per lens, as-of date and segment: the centre served"),
    Relation("marts.customer_segments", SEGMENTS, "one row per person and lens: current segment"),
    Relation("marts.customer_segment_history", SEGMENTS, "one row per person, lens and as-of date"),
    Relation("marts.segment_profiles", SEGMENTS, "one row per lens, segment and as-of date"),
    # quality gates and drift
    Relation("monitoring.gate_results", GATES, "one row per gate, as-of date and expectation"),
    Relation("monitoring.ingest_profile", INGEST_PROFILE, "one row per source and ingest date"),
    Relation("monitoring.drift_metrics", DRIFT, "one row per lens, as-of date and feature"),
    Relation("monitoring.drift_segment_metrics", DRIFT, "one row per lens, as-of date and segment statistic"),
    Relation("monitoring.drift_decisions", DRIFT, "one row per lens and as-of date"),
    # behavioural trigger segments (micro-batches)
    Relation("marts.trigger_membership_history", TRIGGER_TABLES, "one row per trigger occurrence"),
    Relation("marts.trigger_memberships", TRIGGER_TABLES, "one row per member and trigger, active at the batch"),
    Relation("marts.trigger_membership_changes", TRIGGER_TABLES, "one row per change of the latest batch"),
    Relation("marts.customer_active_segments", TRIGGER_TABLES, "view: one row per person, each lens's + trigger segment"),
    Relation("triggers.runs", TRIGGER_TABLES, "one row per micro-batch"),
    Relation("triggers.activity_by_day", TRIGGER_TABLES, "one row per identifier and closed ingest day"),
    Relation("triggers.activity_by_day_partitions", TRIGGER_TABLES, "one row per ingest day held by the cache"),
)

CATALOG: dict[str, Relation] = {r.name: r for r in RELATIONS}


def writer_of(name: str) -> str:
    """The module that writes relation `schema.table` (KeyError names the relation when it is not catalogued)."""
    try:
        return CATALOG[name].writer
    except KeyError:
        raise KeyError(f"{name} is not in the warehouse catalog (seg/core/catalog.py)") from None
