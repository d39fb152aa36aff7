"""Evaluate the trigger definitions in SQL (DuckDB window functions and ASOF joins) at one evaluation time.

Only lake rows with a timestamp at or before the evaluation time `at` are read (no look-ahead). People are
resolved through the published, gated identity graph (`marts.identities`, read only; emails there are the
HMAC-SHA256 of the normalised address with the deployment's key) where it knows them; otherwise a membership is
keyed by the customer id of the session's login, the customer id, the email's HMAC (the key marts.identities gives
that email, so nothing personal is in clear) or the device (`member_key` = person_id or 'customer_id:C..' /
'email_hmac:<hex>' / 'loyalty_id:..' / 'anonymous_id:..').

`evaluate(con, paths, cfg, at, since, session_gap)` fills the temp table `occurrences`: one row per trigger
occurrence whose entry is known by `at` (entered_at <= at), with anchor, entry, expiry, exit (when known by `at`)
and evidence. It only reads the warehouse: every write is in seg.triggers.tables.

* Event triggers (cart / repeated view / browse abandonment) read events and orders in (since, at]; events are
  cut into sessions by seg.triggers.sessions (dbt's rule); an occurrence is authoritative when its anchor lies in
  the *zone* [since + window + session gap, at] (its whole look-back lies inside the read range), and only those
  are returned.
* lapsing: every person's last activity (events, orders, store visits, survey answers) and order history up to
  `at`; the person's usual gap = (last order - first order) / (orders - 1). Ingest days older than 3 days come
  from the cache `triggers.activity_by_day` (refreshed before by seg.triggers.tables.refresh_activity_cache);
  only the last days are read from the lake each micro-batch.
* win_back: the first order after a recorded lapsing entry (reads the history table).
"""

from __future__ import annotations

import datetime as dt

import duckdb

from seg.core.paths import Paths
from seg.core.warehouse import table_exists
from seg.triggers.definitions import Trigger, TriggerConfig
from seg.triggers.sessions import sessionized
from seg.triggers.tables import (
    ACTIVITY_CACHE,
    ACTIVITY_SOURCES,
    EMAIL_TYPE,
    HISTORY,
    OCCURRENCE_COLUMNS,
    activity_agg,
    activity_cutoff,
    occurrence_id,
    pii_hmac,
    ts,
    use_pii_key,
)

# the identity graph dbt publishes after the marts gate: identifier_type, identifier_value, person_id
IDENTITIES = "marts.identities"


def secs(delta: dt.timedelta) -> str:
    return f"INTERVAL {int(delta.total_seconds())} SECOND"


def _lake(paths: Paths, source: str, since_day: dt.date | None, at_day: dt.date) -> str:
    """A subquery over one source's landed partitions with ingest_date in [since_day, at_day] (pruned)."""
    base = paths.raw / source
    if not any(base.glob("ingest_date=*/*.parquet")):
        return None
    low = f"ingest_date >= DATE '{since_day.isoformat()}' and " if since_day else ""
    return (f"(select * from read_parquet('{base}/ingest_date=*/*.parquet', hive_partitioning = true, "
            f"union_by_name = true, hive_types = {{'ingest_date': DATE}}) "
            f"where {low}ingest_date <= DATE '{at_day.isoformat()}')")


def _empty(columns: str) -> str:
    names = ", ".join(f"cast(null as {typ}) as {name}" for name, typ in (c.strip().split(" ", 1) for c in columns.split(",")))
    return f"(select {names} where false)"


EVENT_COLUMNS = ("event_id varchar, occurred_at timestamp, anonymous_id varchar, customer_id varchar, session_id varchar, "
                 "event_type varchar, product_id varchar, properties varchar")
ORDER_COLUMNS = "order_id varchar, customer_id varchar, email_hmac varchar, ordered_at timestamp"


def prepare(con: duckdb.DuckDBPyConnection, paths: Paths, at: dt.datetime, since: dt.datetime,
            session_gap: dt.timedelta) -> None:
    """Temp views/tables shared by the triggers: ids, ev (keyed, sessionised events), ord, buys, item_buys.
    Gives the connection the deployment's key (emails are keyed by their HMAC)."""
    use_pii_key(con, paths)
    at_day, since_day = at.date(), (since - dt.timedelta(days=1)).date()
    if table_exists(con, *IDENTITIES.split(".")):
        con.execute(f"create or replace temp view ids as select identifier_type, identifier_value, person_id from {IDENTITIES}")
    else:
        con.execute("create or replace temp view ids as select cast(null as varchar) as identifier_type, "
                    "cast(null as varchar) as identifier_value, cast(null as varchar) as person_id where false")
    events = _lake(paths, "events", since_day, at_day)
    src = (f"(select event_id, occurred_at, anonymous_id, customer_id, session_id, event_type, product_id, "
           f"cast(properties as varchar) as properties from {events} "
           f"where occurred_at > {ts(since)} and occurred_at <= {ts(at)})") if events else _empty(EVENT_COLUMNS)
    con.execute(f"""
        create or replace temp table ev as
        with sessioned as ({sessionized(src, session_gap)})
        select s.event_id, s.occurred_at, s.anonymous_id, s.customer_id, s.session_id, s.session_key,
               s.session_started_at, s.event_type, s.product_id, s.properties,
               coalesce(s.customer_id, s.session_customer_id) as login_customer_id,
               coalesce(ic.person_id, isc.person_id, ia.person_id) as person_id,
               coalesce(ic.person_id, isc.person_id, ia.person_id,
                        'customer_id:' || coalesce(s.customer_id, s.session_customer_id),
                        'anonymous_id:' || s.anonymous_id) as member_key
        from sessioned s
        left join ids ic on ic.identifier_type = 'customer_id' and ic.identifier_value = s.customer_id
        left join ids isc on isc.identifier_type = 'customer_id' and isc.identifier_value = s.session_customer_id
        left join ids ia on ia.identifier_type = 'anonymous_id' and ia.identifier_value = s.anonymous_id
    """)
    orders = _lake(paths, "orders", since_day, at_day)
    email_hmac = pii_hmac("nullif(lower(trim(email)), '')")
    osrc = (f"(select order_id, customer_id, {email_hmac} as email_hmac, ordered_at from {orders} "
            f"where ordered_at > {ts(since)} and ordered_at <= {ts(at)})") if orders else _empty(ORDER_COLUMNS)
    con.execute(f"""
        create or replace temp table ord as
        select o.order_id, o.ordered_at as bought_at,
               coalesce(ic.person_id, ie.person_id, 'customer_id:' || o.customer_id, '{EMAIL_TYPE}:' || o.email_hmac)
                   as member_key
        from {osrc} o
        left join ids ic on ic.identifier_type = 'customer_id' and ic.identifier_value = o.customer_id
        left join ids ie on ie.identifier_type = '{EMAIL_TYPE}' and ie.identifier_value = o.email_hmac
    """)
    # an order counts for the person of the order and for the device/session that sent its purchase event
    con.execute("""
        create or replace temp table buys as
        select member_key, bought_at, order_id from ord
        union
        select member_key, occurred_at as bought_at, json_extract_string(properties, '$.order_id') as order_id
        from ev where event_type = 'purchase'
    """)
    items = _lake(paths, "order_items", since_day, at_day)
    if items:
        con.execute(f"""
            create or replace temp table item_buys as
            select distinct b.member_key, 'P' || substr(i.sku, 5) as product_id, b.bought_at
            from buys b join (select order_id, sku from {items}) i on i.order_id = b.order_id
        """)
    else:
        con.execute("create or replace temp table item_buys as select member_key, cast(null as varchar) as product_id, bought_at "
                    "from buys where false")


def _keys_and_ids(trigger: Trigger) -> str:
    name = f"'{trigger.name}'"
    return f"{occurrence_id(name)} as occurrence_id, " \
           f"'{trigger.name}' as trigger, '{trigger.segment_name.replace(chr(39), chr(39) * 2)}' as segment_name, " \
           f"{trigger.priority} as priority"


def _finish(trigger: Trigger, at: dt.datetime, body: str, next_exit: str, exit_reason: str) -> str:
    """Wrap a CTE body yielding member/anchor/entered/evidence + `{next_exit}` into occurrence rows."""
    return f"""
        select {_keys_and_ids(trigger)}, member_key, person_id, customer_id, anonymous_id, anchor_at, entered_at,
               entered_at + {secs(trigger.expiry)} as expires_at,
               case when {next_exit} is not null and {next_exit} <= least({ts(at)}, entered_at + {secs(trigger.expiry)})
                        then {next_exit}
                    when entered_at + {secs(trigger.expiry)} <= {ts(at)} then entered_at + {secs(trigger.expiry)} end as exited_at,
               case when {next_exit} is not null and {next_exit} <= least({ts(at)}, entered_at + {secs(trigger.expiry)})
                        then '{exit_reason}'
                    when entered_at + {secs(trigger.expiry)} <= {ts(at)} then 'expired' end as exit_reason,
               evidence
        from ({body})
        where entered_at <= {ts(at)}
    """


def cart_abandonment(trigger: Trigger, at: dt.datetime, zone: dt.datetime) -> str:
    window = secs(trigger.window)
    body = f"""
        with carts as (
            select session_key, arg_max(member_key, (occurred_at, event_id)) as member_key, arg_max(person_id, (occurred_at, event_id)) as person_id,
                   arg_max(login_customer_id, (occurred_at, event_id)) as customer_id, min(anonymous_id) as anonymous_id,
                   min(session_id) as session_id, max(occurred_at) as anchor_at, count(*) as add_to_cart_events,
                   list(event_id order by occurred_at, event_id) as event_ids,
                   list(product_id order by occurred_at, event_id) as product_ids
            from ev where event_type = 'add_to_cart'
            group by session_key
            having count(*) >= {trigger.threshold}
        ),
        nxt as (
            select c.*, b.bought_at as next_buy_at
            from carts c asof left join buys b on c.member_key = b.member_key and b.bought_at >= c.anchor_at
        )
        select member_key, person_id, customer_id, anonymous_id, anchor_at, anchor_at + {window} as entered_at, next_buy_at,
               json_object('session_id', session_id, 'anonymous_id', anonymous_id, 'add_to_cart_events', add_to_cart_events,
                           'event_ids', event_ids, 'product_ids', product_ids, 'last_add_to_cart_at', anchor_at,
                           'no_order_until', anchor_at + {window})::varchar as evidence
        from nxt
        where anchor_at >= {ts(zone)} and (next_buy_at is null or next_buy_at > anchor_at + {window})
    """
    return _finish(trigger, at, body, "next_buy_at", "purchased")


def repeated_product_view(trigger: Trigger, at: dt.datetime, zone: dt.datetime) -> str:
    k = trigger.threshold
    no_buy = secs(trigger.no_buy_window or trigger.window)
    body = f"""
        with views as (
            select member_key, person_id, login_customer_id as customer_id, anonymous_id, product_id, occurred_at, event_id,
                   lag(occurred_at, {k - 1}) over w as first_view_at,
                   list(event_id) over (w rows between {k - 1} preceding and current row) as event_ids
            from ev where event_type = 'product_view' and product_id is not null
            window w as (partition by member_key, product_id order by occurred_at, event_id)
        ),
        cond as (
            select *, coalesce(occurred_at - first_view_at <= {secs(trigger.window)}, false) as reached from views
        ),
        fired as (
            select * from (
                select *, lag(reached) over (partition by member_key, product_id order by occurred_at, event_id) as prev_reached
                from cond
            ) where reached and not coalesce(prev_reached, false)
        ),
        nxt as (
            select f.*, b.bought_at as next_buy_at
            from fired f asof left join item_buys b
                on f.member_key = b.member_key and f.product_id = b.product_id and b.bought_at >= f.first_view_at
        )
        select member_key, person_id, customer_id, anonymous_id, occurred_at as anchor_at,
               occurred_at + {no_buy} as entered_at, next_buy_at,
               json_object('product_id', product_id, 'views', {k}, 'event_ids', event_ids, 'first_view_at', first_view_at,
                           'no_order_until', occurred_at + {no_buy})::varchar as evidence
        from nxt
        where occurred_at >= {ts(zone)} and (next_buy_at is null or next_buy_at > occurred_at + {no_buy})
    """
    return _finish(trigger, at, body, "next_buy_at", "purchased")


def browse_abandonment(trigger: Trigger, at: dt.datetime, zone: dt.datetime) -> str:
    window = secs(trigger.window)
    body = f"""
        with sessions as (
            select session_key, arg_max(member_key, (occurred_at, event_id)) as member_key, arg_max(person_id, (occurred_at, event_id)) as person_id,
                   arg_max(login_customer_id, (occurred_at, event_id)) as customer_id, min(anonymous_id) as anonymous_id,
                   max(occurred_at) filter (where event_type = 'product_view') as anchor_at,
                   count(*) filter (where event_type = 'product_view') as product_views,
                   count(*) filter (where event_type = 'add_to_cart') as carts,
                   list(event_id order by occurred_at, event_id) filter (where event_type = 'product_view') as event_ids,
                   list_sort(list(distinct product_id) filter (where event_type = 'product_view')) as product_ids
            from ev group by session_key
        ),
        engaged as (
            select member_key, occurred_at as bought_at from ev where event_type = 'add_to_cart'
            union all
            select member_key, bought_at from buys
        ),
        nxt as (
            select s.*, e.bought_at as next_engaged_at
            from (select * from sessions where product_views >= {trigger.threshold} and carts = 0) s
            asof left join engaged e on s.member_key = e.member_key and e.bought_at >= s.anchor_at
        )
        select member_key, person_id, customer_id, anonymous_id, anchor_at, anchor_at + {window} as entered_at,
               next_engaged_at,
               json_object('product_views', product_views, 'event_ids', event_ids, 'product_ids', product_ids,
                           'last_view_at', anchor_at, 'no_cart_or_order_until', anchor_at + {window})::varchar as evidence
        from nxt
        where anchor_at >= {ts(zone)} and (next_engaged_at is null or next_engaged_at > anchor_at + {window})
    """
    return _finish(trigger, at, body, "next_engaged_at", "engaged")


def activity_sources(paths: Paths, cfg: TriggerConfig) -> list[str]:
    """The sources the lapsing triggers read that have landed files (orders always: the order history); the
    micro-batch refreshes the activity cache of these before evaluating."""
    wanted = set()
    for trigger in cfg.of_kind("lapsing"):
        wanted |= set(trigger.pattern.get("activity") or ACTIVITY_SOURCES) | {"orders"}
    return [s for s in sorted(wanted) if any((paths.raw / s).glob("ingest_date=*/*.parquet"))]


def prepare_activity(con: duckdb.DuckDBPyConnection, paths: Paths, trigger: Trigger, at: dt.datetime) -> None:
    """Temp table `activity`: per member, the last activity and the order history up to `at` (all history).

    Closed ingest days come from the cache `triggers.activity_by_day` (aggregated once, refreshed by the caller
    with seg.triggers.tables.refresh_activity_cache); the last days are read from the lake with the `at` filter."""
    wanted = trigger.pattern.get("activity") or list(ACTIVITY_SOURCES)
    sources = sorted(set(wanted) | {"orders"})
    present = [s for s in sources if any((paths.raw / s).glob("ingest_date=*/*.parquet"))]
    if "orders" not in present:
        con.execute("create or replace temp table activity (member_key varchar, last_activity_at timestamp, "
                    "orders bigint, first_order_at timestamp, last_order_at timestamp, person_id varchar)")
        return
    cutoff = activity_cutoff(at)
    parts = [f"select * from {ACTIVITY_CACHE} where ingest_date <= DATE '{cutoff}' and source in "
             f"({', '.join(repr(s) for s in present)})"]
    for source in present:
        live = _lake(paths, source, cutoff + dt.timedelta(days=1), at.date())
        col = ACTIVITY_SOURCES[source][0]
        parts.append(activity_agg(source, live, f"where ingest_date > DATE '{cutoff}' and {col} <= {ts(at)}"))
    is_activity = " or ".join(f"source = '{s}'" for s in wanted) or "false"
    con.execute(f"""
        create or replace temp table activity as
        with per_identifier as (
            select source, customer_id, anonymous_id, email_hmac, loyalty_id, max(last_at) as last_at, sum(orders) as orders,
                   min(first_order_at) as first_order_at
            from ({" union all ".join(parts)}) group by all
        ),
        keyed as (
            select p.*,
                   case when source = 'events' then coalesce(ic.person_id, ia.person_id, 'customer_id:' || p.customer_id,
                                                             'anonymous_id:' || p.anonymous_id)
                        when source = 'store_visits' then coalesce(il.person_id, 'loyalty_id:' || p.loyalty_id)
                        else coalesce(ic.person_id, ie.person_id, 'customer_id:' || p.customer_id,
                                      '{EMAIL_TYPE}:' || p.email_hmac)
                   end as member_key
            from per_identifier p
            left join ids ic on ic.identifier_type = 'customer_id' and ic.identifier_value = p.customer_id
            left join ids ia on ia.identifier_type = 'anonymous_id' and ia.identifier_value = p.anonymous_id
            left join ids ie on ie.identifier_type = '{EMAIL_TYPE}' and ie.identifier_value = p.email_hmac
            left join ids il on il.identifier_type = 'loyalty_id' and il.identifier_value = p.loyalty_id
        )
        select member_key, max(last_at) filter (where {is_activity}) as last_activity_at,
               coalesce(sum(orders) filter (where source = 'orders'), 0) as orders,
               min(first_order_at) filter (where source = 'orders') as first_order_at,
               max(last_at) filter (where source = 'orders') as last_order_at,
               case when member_key not like '%:%' then member_key end as person_id
        from keyed where member_key is not null group by member_key
    """)


def lapsing(trigger: Trigger, at: dt.datetime) -> str:
    body = f"""
        with stats as (
            select *, case when orders >= 2 then date_diff('second', first_order_at, last_order_at) / 86400.0 / (orders - 1)
                      end as usual_gap_days
            from activity where orders >= {trigger.threshold} and last_activity_at is not null
        ),
        thresholds as (
            select *, greatest({trigger.min_inactive_days}, {trigger.usual_gap_factor} * coalesce(usual_gap_days, 0))
                          as inactive_days
            from stats
        )
        select member_key, person_id,
               case when member_key like 'customer_id:%' then substr(member_key, 13) end as customer_id,
               case when member_key like 'anonymous_id:%' then substr(member_key, 14) end as anonymous_id,
               last_activity_at as anchor_at,
               last_activity_at + to_microseconds(cast(round(inactive_days * 86400e6) as bigint)) as entered_at,
               null::timestamp as next_exit_at,
               json_object('last_activity_at', last_activity_at, 'orders', orders, 'usual_gap_days', round(usual_gap_days, 2),
                           'inactive_days', round(inactive_days, 2))::varchar as evidence
        from thresholds
    """
    return _finish(trigger, at, body, "next_exit_at", "reactivated")


def win_back(trigger: Trigger, lapse: Trigger, at: dt.datetime, since: dt.datetime, history_exists: bool) -> str:
    """The first order after a lapsing entry (from the history table, plus lapsing occurrences found now)."""
    past = (f"select occurrence_id, member_key, person_id, customer_id, anonymous_id, entered_at from {HISTORY} "
            f"where trigger = '{lapse.name}' and entered_at <= {ts(at)} and coalesce(exited_at, {ts(at)}) >= {ts(since)}"
            if history_exists else None)
    now = (f"select occurrence_id, member_key, person_id, customer_id, anonymous_id, entered_at from occurrences "
           f"where trigger = '{lapse.name}'")
    lapses = f"select distinct * from ({past} union all {now})" if past else now
    body = f"""
        with lapses as ({lapses}),
        nxt as (
            select l.*, o.bought_at as order_at, o.order_id
            from lapses l asof join ord o on l.member_key = o.member_key and o.bought_at > l.entered_at
        )
        select member_key, person_id, customer_id, anonymous_id, order_at as anchor_at, order_at as entered_at,
               null::timestamp as next_exit_at,
               json_object('order_id', order_id, 'lapsing_occurrence_id', occurrence_id, 'lapsing_entered_at', entered_at)::varchar
                   as evidence
        from nxt
    """
    return _finish(trigger, at, body, "next_exit_at", "none")


def close_reactivated(con: duckdb.DuckDBPyConnection, lapse: Trigger, at: dt.datetime, since: dt.datetime) -> None:
    """Lapsing occurrences still open in the history but no longer produced now end at the first activity after
    their anchor (read from the horizon; the previous micro-batch saw them open, so it lies inside it)."""
    con.execute(f"""
        insert into occurrences
        with open_rows as (
            select h.* from {HISTORY} h
            where h.trigger = '{lapse.name}' and h.exited_at is null and h.entered_at <= {ts(at)}
              and h.occurrence_id not in (select occurrence_id from occurrences where trigger = '{lapse.name}')
        ),
        recent as (
            select member_key, occurred_at as bought_at from ev union all select member_key, bought_at from buys
        ),
        firsts as (
            select o.occurrence_id, min(r.bought_at) as first_at
            from open_rows o left join recent r on r.member_key = o.member_key and r.bought_at > o.anchor_at
            group by o.occurrence_id
        )
        select o.occurrence_id, o.trigger, o.segment_name, o.priority, o.member_key, o.person_id, o.customer_id,
               o.anonymous_id, o.anchor_at, o.entered_at, o.expires_at,
               least(coalesce(f.first_at, {ts(at)}), o.expires_at) as exited_at,
               case when f.first_at is not null and f.first_at < o.expires_at then 'reactivated'
                    when o.expires_at <= {ts(at)} then 'expired' else 'no_longer_matches' end as exit_reason,
               o.evidence
        from open_rows o join firsts f using (occurrence_id)
    """)


def evaluate(con: duckdb.DuckDBPyConnection, paths: Paths, cfg: TriggerConfig, at: dt.datetime,
             since: dt.datetime | None, session_gap: dt.timedelta) -> dict:
    """Fill temp table `occurrences` for evaluation time `at` (reads the lake in (since, at], default since
    at - horizon); returns {"since", "zones": {trigger: zone start}, "steps": {step: seconds}}. With a lapsing
    trigger, the activity cache must be refreshed first (seg.triggers.tables.refresh_activity_cache)."""
    import time

    steps: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        steps[name] = round(now - clock, 3)
        clock = now

    since = since or (at - cfg.horizon)
    prepare(con, paths, at, since, session_gap)
    con.execute(f"create or replace temp table occurrences ({OCCURRENCE_COLUMNS})")
    lap("prepare")
    zones = {}
    for trig in cfg.triggers.values():
        if trig.kind in ("lapsing", "win_back"):
            continue
        # the look-back of an occurrence anchored in the zone lies inside (since, at]; a repeated view also needs
        # the view before its first one (was the threshold already reached?), hence two windows
        lookback = (trig.window or dt.timedelta()) * (2 if trig.kind == "repeated_product_view" else 1)
        zone = since + lookback + session_gap
        zones[trig.name] = zone
        sql = {"cart_abandonment": cart_abandonment, "repeated_product_view": repeated_product_view,
               "browse_abandonment": browse_abandonment}[trig.kind](trig, at, zone)
        con.execute(f"insert into occurrences {sql}")
        lap(trig.name)
    history_exists = table_exists(con, *HISTORY.split("."))
    for lapse in cfg.of_kind("lapsing"):
        prepare_activity(con, paths, lapse, at)
        lap("activity")
        con.execute(f"insert into occurrences {lapsing(lapse, at)}")
        if history_exists:
            close_reactivated(con, lapse, at, since)
        lap(lapse.name)
    for trig in cfg.of_kind("win_back"):
        lapse = cfg.of_kind("lapsing")[0]
        con.execute(f"insert into occurrences {win_back(trig, lapse, at, since, history_exists)}")
        lap(trig.name)
    return {"since": since, "zones": zones, "steps": steps}
