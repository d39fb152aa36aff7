"""Benchmarks and scores against the generator's truth: figures printed by `seg bench`, never asserted by tests.

    scales.py          `seg bench` / `make bench`: wall time, peak RSS and throughput at several scales
    gates.py           each quality gate's overhead on the stage it guards (from reports/stage_metrics)
    identity_quality.py pairwise precision / recall of person_id against the generator's truth
    dbt_baseline.py    dbt vs the same transformations as one hand-written SQL script
    drift.py           the daily drift step at scale
    training.py        training and assignment at scale
    triggers.py        a trigger micro-batch at scale and a Redis publish of N memberships

A benchmark may import the stages and seg.core (docs/architecture.md), never the pipeline layer that runs them:
whole runs are measured through the `seg` command in a subprocess.
"""
