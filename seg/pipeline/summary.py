"""`seg summary`: what a data directory holds after a run, and where to look next."""

from __future__ import annotations

import os

import duckdb

from seg.core.config import Settings
from seg.core.contract import load_contract
from seg.lake.landing import read_manifests

MART_TABLES = ("customers", "orders", "sessions", "customer_rfm", "customer_features",
               "customer_behaviour_features", "customer_segments",
               "customer_segment_history", "segment_profiles")


def landing_totals(settings: Settings) -> list[tuple[str, int, int, int, int]]:
    """(source, files, rows in, landed, quarantined) from the manifests."""
    rows = []
    for source in load_contract().sources:
        entries = read_manifests(settings.paths, source)
        rows.append((source, len(entries), sum(e["rows_in"] or 0 for e in entries),
                     sum(e["rows_landed"] for e in entries), sum(e["rows_quarantined"] for e in entries)))
    return rows


def print_summary(settings: Settings) -> None:
    paths = settings.paths
    print(f"data directory: {paths.root}\n")
    print(f"{'source':<18}{'files':>7}{'rows in':>12}{'landed':>12}{'quarantined':>13}")
    for source, files, rows_in, landed, quarantined in landing_totals(settings):
        print(f"{source:<18}{files:>7}{rows_in:>12,}{landed:>12,}{quarantined:>13,}")
    if not paths.warehouse.exists():
        print("\nno warehouse yet: run `seg run --date YYYY-MM-DD`")
        return
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        print("\nmarts (rows):")
        for table in MART_TABLES:
            try:
                n = con.execute(f"select count(*) from marts.{table}").fetchone()[0]
                print(f"  marts.{table:<28}{n:>12,}")
            except duckdb.CatalogException:
                print(f"  marts.{table:<28}{'missing':>12}")
        try:
            currency, orders, revenue, customers = con.execute(
                "select any_value(reporting_currency), count(*), sum(amount_reporting) filter (where is_completed), "
                "count(distinct person_id) from marts.orders").fetchone()
            if orders:
                print(f"\norders: {orders:,} of {customers:,} customers; revenue of completed orders "
                      f"{revenue or 0:,.2f} {currency} (the reporting currency)")
        except duckdb.Error:
            pass
        for lens in settings.lenses:
            try:
                segs = con.execute(
                    "select segment_id, segment_name, count(*) n, any_value(as_of_date), any_value(model_version) "
                    "from marts.customer_segments where segmentation = ? group by all order by segment_id",
                    [lens]).fetchall()
            except (duckdb.CatalogException, duckdb.BinderException):
                break
            if segs:
                print(f"\nsegmentation {lens}: segments as of {segs[0][3]} (model version {segs[0][4]}):")
                total = sum(s[2] for s in segs)
                for seg_id, name, n, *_ in segs:
                    print(f"  {seg_id:>3}  {n:>9,}  {n / total:6.1%}  {name}")
            else:
                print(f"\nsegmentation {lens}: nothing published yet")
        _print_latest_day(con)
    finally:
        con.close()
    for lens in settings.lenses:
        _print_champion(settings.for_lens(lens))
    drift = sorted(paths.reports.glob("drift/*/*/drift_report.html"))
    docs = paths.reports / "data_docs" / "index.html"
    print("\nwhere to look next:")
    # the duckdb CLI is not part of the project: the venv's Python has the duckdb module
    print(f"  warehouse (DuckDB):  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{paths.warehouse}', "
          "read_only=True).sql('select * from marts.customer_segments limit 10'))\"")
    print("  Airflow + MLflow UI: make ui")
    print(f"  Data Docs (GX):      {docs if docs.exists() else '(not built yet)'}")
    print(f"  drift report:        {drift[-1] if drift else '(none yet)'}")
    print(f"  quarantine:          {paths.quarantine}   manifests: {paths.manifests}")


def _print_latest_day(con: duckdb.DuckDBPyConnection) -> None:
    """The last as-of date's drift decision (with its reasons) and the checks that failed that day, by severity:
    what a person asks first after a run (a warning does not stop the run, so it is easy to miss)."""
    try:
        decisions = con.execute(
            "select segmentation, as_of_date, decision, reasons from monitoring.drift_decisions "
            "where as_of_date = (select max(as_of_date) from monitoring.drift_decisions) order by all").fetchall()
    except (duckdb.CatalogException, duckdb.BinderException):
        decisions = []
    if decisions:
        print()
    for lens, day, decision, reasons in decisions:
        print(f"drift of {lens} on {day}: {decision} ({reasons})")
    try:
        latest = con.execute("select max(as_of_date) from monitoring.gate_results").fetchone()[0]
        failed = con.execute(
            "select gate, suite, expectation, severity, unexpected_count, observed_value from monitoring.gate_results "
            "where as_of_date = ? and not success order by severity, gate, suite, expectation", [latest]).fetchall()
    except duckdb.CatalogException:
        return
    if latest is None:
        return
    if not failed:
        print(f"gates on {latest}: every check passed")
        return
    print(f"gates on {latest}: {len(failed)} check(s) failed (reports/gx/{latest}/<gate>.json, Data Docs):")
    for gate, suite, expectation, severity, unexpected, observed in failed:
        detail = f"{unexpected} unexpected" if unexpected else f"observed {observed}"
        print(f"  {severity:<8} {gate}: {suite}.{expectation} ({detail})")


def _print_champion(settings: Settings) -> None:
    """The serving model and what it is weak at: a deployment's first model is promoted even when it misses a
    quality bar (so the deployment gets segments), and says so here."""
    if not (settings.paths.mlflow / "mlflow.db").exists() and "MLFLOW_TRACKING_URI" not in os.environ:
        return
    try:
        from ml.tracking import champion_version

        version = champion_version(settings)
    except Exception as exc:  # the summary must not fail on an unreachable tracking server
        print(f"\nmodel: could not read the MLflow registry ({type(exc).__name__})")
        return
    name = f"model of {settings.lens} ({settings.ml.registered_model_name})"
    if version is None:
        print(f"\n{name}: no champion yet")
        return
    weaknesses = (version.tags or {}).get("promotion_weaknesses", "not recorded")
    print(f"\n{name}: version {version.version} is the champion; weaknesses: {weaknesses}")
