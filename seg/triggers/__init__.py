"""Behavioural trigger segments, evaluated in micro-batches next to the daily ML segments.

    definitions.py  config/triggers.yml -> Trigger dataclasses (pattern, window, threshold, exclusion, expiry, priority)
    sessions.py     the session rule shared with dbt (gap: settings sessions.gap_minutes)
    sql.py          the triggers in DuckDB SQL at one evaluation time (no look-ahead), people from marts.identities
    tables.py       the trigger tables: names, layouts and every write (history / current / changes, the hybrid
                    view, triggers.runs, lapsing's activity cache)
    batch.py        evaluate_and_write(settings, at): one evaluation, written to the tables
    redis.py        current memberships to Redis (versioned keys, atomic pointer switch), changes to a stream

Imports run one way: definitions, sessions, tables <- sql <- batch; redis reads the tables. The micro-batch
(land -> evaluate + write -> Redis) is seg/pipeline/microbatch.py, the DAG dags/segmentation_triggers.py, the CLI
`seg triggers` seg/pipeline/triggers_cli.py, the benchmark seg/bench/triggers.py.

"Who was in cart_abandonment on 2026-11-02, and why":

    select member_key, person_id, entered_at, coalesce(exited_at, expires_at) as left_at, exit_reason, evidence
    from marts.trigger_membership_history
    where trigger = 'cart_abandonment'
      and entered_at < date '2026-11-03' and coalesce(exited_at, expires_at) > date '2026-11-02'
"""
