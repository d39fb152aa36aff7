-- Hand-written baseline: the dbt project's transformations (staging -> identity -> marts customers, orders,
-- sessions, customer_rfm, customer_features) as one plain DuckDB script, for the performance comparison in
-- seg/bench/dbt_baseline.py. It is not part of the pipeline; dbt only lists it as an analysis.
--
-- Run by seg.bench.dbt_baseline.run_hand_written() on a separate DuckDB file over the same lake, which first defines:
--   views raw_<source> over the lake Parquet files, table rfm_segments (the dbt seed), DuckDB variables as_of_date
--   (DATE), reporting_currency and fx_max_rate_age_days, and the macro pii_hash(value) (the keyed HMAC-SHA256 of
--   dbt's macro pii_hash, with the deployment's key).
-- Statements are separated by lines holding only ';;'. A statement `-- @components <edges> <nodes> <out>` is not
-- SQL: the runner computes connected components there by label propagation until nothing changes (a loop a
-- hand-written job can afford, where the dbt model unrolls a fixed number of rounds).
-- Written as one would by hand on DuckDB: QUALIFY, EXCLUDE, temp tables, no cross-database macros.

create schema if not exists hand
;;
-- staging -------------------------------------------------------------------------------------------------
create or replace temp table crm as
select
    customer_id, nullif(lower(trim(email)), '') as email, nullif(regexp_replace(trim(phone), '[^0-9+]', '', 'g'), '') as phone,
    birth_date, coalesce(gender, 'U') as gender, country, region, city, signup_at, loyalty_id,
    marketing_opt_in as is_marketing_opt_in, updated_at
from raw_crm_customers
where ingest_date <= getvariable('as_of_date') and updated_at < getvariable('as_of_date') + interval 1 day
qualify row_number() over (partition by customer_id order by updated_at desc, ingest_date desc, _source_file desc, _row_number desc) = 1
;;
create or replace temp table ord as
select
    order_id, customer_id, nullif(lower(trim(email)), '') as email, ordered_at, channel,
    coalesce(status, 'completed') as status, cast(amount as decimal(18, 2)) as amount, coalesce(currency, getvariable('reporting_currency')) as currency
from raw_orders
where ingest_date <= getvariable('as_of_date') and ordered_at < getvariable('as_of_date') + interval 1 day
qualify row_number() over (partition by order_id order by ingest_date desc, _source_file desc, _row_number desc) = 1
;;
create or replace temp table items as
select order_id, quantity, cast(unit_price as decimal(18, 2)) as unit_price,
    cast(coalesce(discount, 0) as decimal(5, 4)) as discount_share, category
from raw_order_items
where ingest_date <= getvariable('as_of_date')
qualify row_number() over (partition by order_id, line_no order by ingest_date desc, _source_file desc, _row_number desc) = 1
;;
create or replace temp table ev as
select event_id, occurred_at, anonymous_id, customer_id, event_type, device_type,
    try_cast(json_extract_string(properties, '$.video_percent') as integer) as video_percent,
    try_cast(json_extract_string(properties, '$.scroll_percent') as integer) as scroll_percent
from raw_events
where ingest_date <= getvariable('as_of_date') and occurred_at < getvariable('as_of_date') + interval 1 day
qualify row_number() over (partition by event_id order by ingest_date desc, _source_file desc, _row_number desc) = 1
;;
create or replace temp table visits as
select visit_id, loyalty_id, visited_at, cast(dwell_minutes as decimal(9, 2)) as dwell_minutes,
    cast(coalesce(purchase_amount, 0) as decimal(18, 2)) as purchase_amount
from raw_store_visits
where ingest_date <= getvariable('as_of_date') and visited_at < getvariable('as_of_date') + interval 1 day
qualify row_number() over (partition by visit_id order by ingest_date desc, _source_file desc, _row_number desc) = 1
;;
create or replace temp table survey as
select response_id, question_id, customer_id, nullif(lower(trim(email)), '') as email, answered_at, answer,
    case when question_id != 'preferred_channel' then try_cast(answer as integer) end as answer_score
from raw_survey_responses
where ingest_date <= getvariable('as_of_date') and answered_at < getvariable('as_of_date') + interval 1 day
qualify row_number() over (partition by response_id, question_id order by ingest_date desc, _source_file desc, _row_number desc) = 1
;;
-- identity: edges, the over-stitching guard (email / loyalty card <= 2 customer ids; a device <= 1 person) ------
create or replace temp table edges as
select distinct customer_id, identifier_type, identifier_value from (
    select customer_id, 'email' as identifier_type, email as identifier_value from crm where email is not null
    union all select customer_id, 'loyalty_id', loyalty_id from crm where loyalty_id is not null
    union all select customer_id, 'email', email from ord where customer_id is not null and email is not null
    union all select customer_id, 'email', email from survey where customer_id is not null and email is not null
    union all select customer_id, 'anonymous_id', anonymous_id from ev where customer_id is not null
)
;;
create or replace temp table identifier_customers as
select identifier_type, identifier_value, count(distinct customer_id) as customer_count
from edges group by all
;;
create or replace temp table strong_edges as
select 'customer_id:' || e.customer_id as node_a, e.identifier_type || ':' || e.identifier_value as node_b
from edges e join identifier_customers c using (identifier_type, identifier_value)
where e.identifier_type != 'anonymous_id' and c.customer_count <= 2
;;
create or replace temp table strong_nodes as
select distinct 'customer_id:' || customer_id as node from edges
union select node_b from strong_edges
;;
-- @components strong_edges strong_nodes strong_components
;;
create or replace temp table device_persons as
select e.identifier_value, count(distinct s.label) as person_count
from edges e join strong_components s on s.node = 'customer_id:' || e.customer_id
where e.identifier_type = 'anonymous_id'
group by all
;;
create or replace temp table accepted_edges as
select 'customer_id:' || e.customer_id as node_a, e.identifier_type || ':' || e.identifier_value as node_b
from edges e
join identifier_customers c using (identifier_type, identifier_value)
left join device_persons d on e.identifier_type = 'anonymous_id' and d.identifier_value = e.identifier_value
where case when e.identifier_type = 'anonymous_id' then d.person_count <= 1 else c.customer_count <= 2 end
;;
create or replace temp table identity_nodes as
select distinct node from (
    select 'customer_id:' || customer_id as node from crm
    union all select 'email:' || email from crm
    union all select 'loyalty_id:' || loyalty_id from crm
    union all select 'customer_id:' || customer_id from ord
    union all select 'email:' || email from ord
    union all select 'anonymous_id:' || anonymous_id from ev
    union all select 'customer_id:' || customer_id from ev
    union all select 'loyalty_id:' || loyalty_id from visits
    union all select 'customer_id:' || customer_id from survey
    union all select 'email:' || email from survey
    union all select node_a from accepted_edges
    union all select node_b from accepted_edges
) where node is not null
;;
-- @components accepted_edges identity_nodes identity_components
;;
create or replace temp table identities as
with keyed as (
    select label, coalesce(min(case when node like 'customer_id:%' then node end), min(node)) as person_key
    from identity_components group by label
)
select
    c.node as identifier_key,
    split_part(c.node, ':', 1) as identifier_type,
    substr(c.node, strpos(c.node, ':') + 1) as identifier_value,
    case when k.person_key like 'email:%' then left(pii_hash(k.person_key), 32) else md5(k.person_key) end as person_id
from identity_components c join keyed k using (label)
;;
create or replace temp table id_customer as
select identifier_value, person_id from identities where identifier_type = 'customer_id'
;;
create or replace temp table id_email as
select identifier_value, person_id from identities where identifier_type = 'email'
;;
-- marts.orders ------------------------------------------------------------------------------------------------
create or replace table hand.orders as
with lines as (
    select order_id, count(*) as line_count, sum(quantity) as unit_count,
        cast(round(sum(quantity * unit_price), 2) as decimal(18, 2)) as gross_item_amount,
        cast(round(sum(quantity * unit_price * discount_share), 2) as decimal(18, 2)) as discount_amount,
        count(distinct category) as category_count
    from items group by order_id
)
select
    o.order_id, coalesce(bc.person_id, be.person_id) as person_id, o.customer_id, o.customer_id is null as is_guest_order,
    o.ordered_at, cast(o.ordered_at as date) as order_date, o.channel, o.status, o.status = 'completed' as is_completed,
    o.currency, o.amount,
    case when o.currency = getvariable('reporting_currency') then o.amount
         else cast(round(o.amount * r.rate, 2) as decimal(18, 2)) end as amount_reporting,
    l.order_id is not null as has_items, coalesce(l.line_count, 0) as line_count, coalesce(l.unit_count, 0) as unit_count,
    l.gross_item_amount, l.discount_amount,
    round(cast(l.discount_amount as double) / nullif(cast(l.gross_item_amount as double), 0), 6) as item_discount_share,
    coalesce(l.category_count, 0) as category_count
from ord o
left join id_customer bc on bc.identifier_value = o.customer_id
left join id_email be on be.identifier_value = o.email
left join lines l on l.order_id = o.order_id
left join (
    -- the latest rate to the reporting currency on or before the order date, at most fx_max_rate_age_days old
    select o2.order_id, arg_max(cast(f.rate as decimal(18, 8)), f.rate_date) as rate
    from ord o2
    join raw_fx_rates f on f.from_currency = o2.currency and f.to_currency = getvariable('reporting_currency')
        and f.rate_date <= cast(o2.ordered_at as date)
        and f.rate_date >= cast(o2.ordered_at as date) - to_days(cast(getvariable('fx_max_rate_age_days') as integer))
    group by o2.order_id
) r on r.order_id = o.order_id
;;
-- sessions (full sessionisation every run) ------------------------------------------------------------------------
create or replace temp table ev_sessions as
with flagged as (
    select *, case when lag(occurred_at) over w is null
                     or date_diff('second', lag(occurred_at) over w, occurred_at) > 1800 then 1 else 0 end as is_start
    from ev window w as (partition by anonymous_id order by occurred_at, event_id)
),
numbered as (
    select *, sum(is_start) over (partition by anonymous_id order by occurred_at, event_id
                                  rows between unbounded preceding and current row) as session_number
    from flagged
)
select *,
    md5(anonymous_id || '|' || cast(min(occurred_at) over s as varchar)) as session_id,
    min(customer_id) over s as session_customer_id
from numbered window s as (partition by anonymous_id, session_number)
;;
create or replace table hand.sessions as
with summarised as (
    select session_id, anonymous_id, session_customer_id, min(occurred_at) as started_at, max(occurred_at) as ended_at,
        min(device_type) as device_type, count(*) as event_count,
        count(*) filter (where event_type = 'page_view') as page_view_count,
        count(*) filter (where event_type = 'product_view') as product_view_count,
        count(*) filter (where event_type = 'add_to_cart') as add_to_cart_count,
        count(*) filter (where event_type = 'checkout_started') as checkout_count,
        count(*) filter (where event_type = 'purchase') as purchase_count
    from ev_sessions group by all
)
select
    s.session_id, coalesce(bc.person_id, bd.person_id) as person_id, s.anonymous_id, s.session_customer_id as customer_id,
    s.session_customer_id is not null as is_logged_in, s.started_at, s.ended_at, cast(s.started_at as date) as session_date,
    date_diff('second', s.started_at, s.ended_at) as session_duration_s, s.device_type, s.event_count, s.page_view_count,
    s.product_view_count, s.add_to_cart_count, s.add_to_cart_count > 0 as has_add_to_cart, s.checkout_count > 0 as has_checkout,
    s.purchase_count > 0 as has_purchase, s.add_to_cart_count > 0 and s.purchase_count = 0 as is_cart_abandoned
from summarised s
left join id_customer bc on bc.identifier_value = s.session_customer_id
left join (select identifier_value, person_id from identities where identifier_type = 'anonymous_id') bd
    on bd.identifier_value = s.anonymous_id
;;
create or replace temp table visits_attributed as
select v.*, i.person_id
from visits v left join (select identifier_value, person_id from identities where identifier_type = 'loyalty_id') i
    on i.identifier_value = v.loyalty_id
;;
create or replace temp table survey_answers as
with attributed as (
    select s.*, coalesce(bc.person_id, be.person_id) as answer_person_id
    from survey s
    left join id_customer bc on bc.identifier_value = s.customer_id
    left join id_email be on be.identifier_value = s.email
    qualify row_number() over (partition by answer_person_id, question_id order by answered_at desc, response_id desc) = 1
)
select answer_person_id as person_id,
    max(answer_score) filter (where question_id = 'price_sensitivity') as price_sensitivity,
    max(answer_score) filter (where question_id = 'brand_loyalty') as brand_loyalty,
    max(answer_score) filter (where question_id = 'sustainability_interest') as sustainability_interest,
    max(answer_score) filter (where question_id = 'innovation_seeking') as innovation_seeking,
    max(answer_score) filter (where question_id = 'shopping_enjoyment') as shopping_enjoyment,
    max(answered_at) as last_answered_at
from attributed group by answer_person_id
;;
-- marts.customers ---------------------------------------------------------------------------------------------
create or replace table hand.customers as
with persons as (
    select person_id,
        min(identifier_value) filter (where identifier_type = 'customer_id') as customer_id,
        count(*) filter (where identifier_type = 'customer_id') as customer_id_count,
        count(*) filter (where identifier_type = 'email') as email_count,
        count(*) filter (where identifier_type = 'loyalty_id') as loyalty_id_count,
        count(*) filter (where identifier_type = 'anonymous_id') as anonymous_id_count,
        min(identifier_value) filter (where identifier_type = 'email') as any_email
    from identities group by person_id
    having count(*) filter (where identifier_type != 'anonymous_id') > 0
),
crm_records as (
    select crm.*, i.person_id,
        row_number() over (partition by i.person_id order by crm.updated_at desc, crm.customer_id) as record_rank,
        count(*) over (partition by i.person_id) as crm_record_count,
        min(crm.signup_at) over (partition by i.person_id) as first_signup_at
    from crm join id_customer i on i.identifier_value = crm.customer_id
),
activity as (
    select person_id, min(active_at) as first_seen_at, max(active_at) as last_seen_at from (
        select person_id, ordered_at as active_at from hand.orders
        union all select person_id, started_at from hand.sessions
        union all select person_id, ended_at from hand.sessions
        union all select person_id, visited_at from visits_attributed
        union all select person_id, last_answered_at from survey_answers
        union all select person_id, signup_at from crm_records
        union all select person_id, updated_at from crm_records
    ) where person_id is not null group by person_id
)
select
    p.person_id, p.customer_id, p.customer_id_count, p.email_count, p.loyalty_id_count, p.anonymous_id_count,
    coalesce(c.crm_record_count, 0) as crm_record_count, c.person_id is not null as has_crm_record,
    sha256(coalesce(c.email, p.any_email)) as email_sha256, sha256(c.phone) as phone_sha256,
    c.gender, c.birth_date, c.country, c.region, c.city, p.loyalty_id_count > 0 as has_loyalty_card,
    c.is_marketing_opt_in, c.first_signup_at as signup_at, c.updated_at as crm_updated_at,
    a.first_seen_at, a.last_seen_at, getvariable('as_of_date') as as_of_date
from persons p
left join crm_records c on c.person_id = p.person_id and c.record_rank = 1
left join activity a on a.person_id = p.person_id
;;
-- marts.customer_rfm ------------------------------------------------------------------------------------------
create or replace table hand.customer_rfm as
with measured as (
    select person_id, max(order_date) as last_order_date, count(distinct order_id) as frequency,
        cast(sum(amount_reporting) as decimal(18, 2)) as monetary
    from hand.orders where is_completed and person_id is not null group by person_id
),
scored as (
    select *, date_diff('day', last_order_date, getvariable('as_of_date')) as recency_days,
        ntile(5) over (order by last_order_date, person_id) as r_score,
        ntile(5) over (order by frequency, person_id) as f_score,
        ntile(5) over (order by monetary, person_id) as m_score
    from measured
)
select s.person_id, getvariable('as_of_date') as as_of_date, s.last_order_date, s.recency_days, s.frequency,
    s.monetary, s.r_score, s.f_score, s.m_score, cast(floor((s.f_score + s.m_score + 1) / 2.0) as integer) as fm_score,
    s.r_score::varchar || s.f_score::varchar || s.m_score::varchar as rfm_cell, g.rfm_segment
from scored s
left join rfm_segments g on g.r_score = s.r_score and g.fm_score = cast(floor((s.f_score + s.m_score + 1) / 2.0) as integer)
;;
-- marts.customer_features (every source present: the benchmark lake has all six) --------------------------------
create or replace table hand.customer_features as
with order_stats as (
    select person_id,
        count(*) filter (where is_completed and channel = 'web') as web_order_count,
        count(*) filter (where is_completed and channel = 'app') as app_order_count,
        count(*) filter (where is_completed and channel = 'store') as store_order_count,
        count(*) filter (where status = 'returned') as returned_order_count,
        count(*) filter (where status in ('completed', 'returned')) as kept_or_returned_order_count,
        sum(discount_amount) filter (where is_completed) as discount_amount,
        sum(gross_item_amount) filter (where is_completed) as gross_item_amount,
        round(avg(unit_count) filter (where is_completed), 6) as avg_units_per_order
    from hand.orders where person_id is not null group by person_id
),
event_stats as (
    select s.person_id, count(*) as event_count,
        count(*) filter (where e.event_type = 'product_view') as product_view_count,
        count(*) filter (where e.event_type = 'add_to_cart') as add_to_cart_count,
        count(*) filter (where e.event_type = 'search') as search_count,
        count(*) filter (where e.event_type = 'video_play') as video_play_count,
        round(avg(e.video_percent), 6) as avg_video_percent, round(avg(e.scroll_percent), 6) as avg_scroll_percent,
        round(count(*) filter (where hour(e.occurred_at) >= 18) / count(*), 6) as evening_event_share,
        round(count(*) filter (where isodow(e.occurred_at) in (6, 7)) / count(*), 6) as weekend_event_share,
        max(cast(e.occurred_at as date)) as last_event_date
    from ev_sessions e join hand.sessions s using (session_id)
    where s.person_id is not null group by s.person_id
),
session_stats as (
    select person_id, count(*) as session_count, count(*) filter (where has_add_to_cart) as cart_session_count,
        count(*) filter (where is_cart_abandoned) as abandoned_cart_session_count,
        round(avg(session_duration_s), 6) as avg_session_duration_s
    from hand.sessions where person_id is not null group by person_id
),
visit_stats as (
    select person_id, count(*) as store_visit_count, cast(sum(purchase_amount) as decimal(18, 2)) as store_spend,
        round(avg(dwell_minutes), 6) as avg_dwell_minutes
    from visits_attributed where person_id is not null group by person_id
)
select
    c.person_id, c.customer_id, getvariable('as_of_date') as as_of_date,
    r.recency_days, coalesce(r.frequency, 0) as frequency, coalesce(r.monetary, 0) as monetary,
    round(cast(r.monetary as double) / nullif(r.frequency, 0), 6) as avg_order_value,
    round(cast(o.discount_amount as double) / nullif(cast(o.gross_item_amount as double), 0), 6) as discount_share,
    round(o.web_order_count / nullif(r.frequency, 0), 6) as web_order_share,
    round(o.app_order_count / nullif(r.frequency, 0), 6) as app_order_share,
    round(o.store_order_count / nullif(r.frequency, 0), 6) as store_order_share,
    round(o.returned_order_count / nullif(o.kept_or_returned_order_count, 0), 6) as return_rate,
    o.avg_units_per_order,
    coalesce(v.store_visit_count, 0) as store_visit_count, coalesce(v.store_spend, 0) as store_spend, v.avg_dwell_minutes,
    coalesce(e.event_count, 0) as event_count, coalesce(s.session_count, 0) as session_count,
    coalesce(e.product_view_count, 0) as product_view_count, coalesce(e.add_to_cart_count, 0) as add_to_cart_count,
    coalesce(e.search_count, 0) as search_count, coalesce(e.video_play_count, 0) as video_play_count,
    round(s.abandoned_cart_session_count / nullif(s.cart_session_count, 0), 6) as cart_abandonment_rate,
    s.avg_session_duration_s, e.avg_video_percent, e.avg_scroll_percent, e.evening_event_share, e.weekend_event_share,
    date_diff('day', e.last_event_date, getvariable('as_of_date')) as days_since_last_event,
    q.price_sensitivity, q.brand_loyalty, q.sustainability_interest, q.innovation_seeking, q.shopping_enjoyment,
    date_diff('day', cast(c.signup_at as date), getvariable('as_of_date')) as tenure_days,
    floor(date_diff('day', c.birth_date, getvariable('as_of_date')) / 365.25) as age_years
from hand.customers c
left join hand.customer_rfm r using (person_id)
left join order_stats o using (person_id)
left join event_stats e using (person_id)
left join session_stats s using (person_id)
left join visit_stats v using (person_id)
left join survey_answers q using (person_id)
