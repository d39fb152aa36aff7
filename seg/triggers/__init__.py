"""Behavioural trigger segments, evaluated in micro-batches next to the daily ML segments.

    definitions.py  config/triggers.yml -> Trigger dataclasses (pattern, window, threshold, exclusion, expiry, priority)
    evaluate.py     the triggers in DuckDB SQL at one evaluation time (no look-ahead), identities resolved
    microbatch.py   land the day's files, evaluate, write history / current / changes tables + the hybrid view
    publish.py      current memberships to Redis (versioned keys, atomic pointer switch), changes to a stream
    orchestrate.py  the DAG segmentation_triggers through Airflow's dag.test (`seg triggers run`)
    bench.py        `bench(...)`: a micro-batch at scale and a Redis publish of N memberships

"Who was in cart_abandonment on 2026-11-02, and why":

    select member_key, person_id, entered_at, coalesce(exited_at, expires_at) as left_at, exit_reason, evidence
    from marts.trigger_membership_history
    where trigger = 'cart_abandonment'
      and entered_at < date '2026-11-03' and coalesce(exited_at, expires_at) > date '2026-11-02'
"""

from __future__ import annotations


def bench(*args, **kwargs) -> dict:
    """See seg.triggers.bench.run."""
    from seg.triggers.bench import run

    return run(*args, **kwargs)
