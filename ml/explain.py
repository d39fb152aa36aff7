"""Why is this customer in these segments? `explain(settings, customer_id) -> dict`, printed by `seg explain ID`.

One answer per segmentation ("lens") the customer has a published segment in. For each, it reads (read-only)
the published `marts.customer_segments` (current segment, model version), the customer's
`marts.customer_segment_history` (since when: the first as-of date of the current unbroken run of days in the same
segment id, ids being stable across refits) and the lens's feature mart, plus the assigning model version's
`reference.json` (population mean/std per feature and each segment's standardised profile, on the model's scale:
log features log1p'd). The customer's own standardised values are compared with the segment's profile; the
"why" lists the segment's strongest features (|z| >= `ml.naming_min_abs_z`, at most `ml.profile_top_features`),
the customer's closest ones first (smallest |customer z - segment z|).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ml import features, tracking
from seg.core.config import Settings
from seg.core.warehouse import connect, table_exists


def _current(con, customer_id: str, lens: str) -> dict[str, Any] | None:
    row = con.execute(
        "select person_id, customer_id, segment_id, segment_name, as_of_date, model_version "
        "from marts.customer_segments where segmentation = ? and (customer_id = ? or person_id = ?) limit 1",
        [lens, customer_id, customer_id],
    ).fetchone()
    if row is None:
        return None
    keys = ("person_id", "customer_id", "segment_id", "segment_name", "as_of_date", "model_version")
    return dict(zip(keys, row, strict=True))


def _since(con, person_id: str, segment_id: int, lens: str) -> tuple[str | None, dict[str, Any] | None]:
    """(first as-of date of the current run in segment_id, the segment before that run or None)."""
    if not table_exists(con, "marts", "customer_segment_history"):
        return None, None
    rows = con.execute(
        "select as_of_date, segment_id, segment_name from marts.customer_segment_history "
        "where segmentation = ? and person_id = ? order by as_of_date desc",
        [lens, person_id],
    ).fetchall()
    since, previous = None, None
    for day, seg, name in rows:
        if int(seg) != int(segment_id):
            previous = {"segment_id": int(seg), "segment_name": name, "until": day.isoformat()}
            break
        since = day.isoformat()
    return since, previous


def _model_version(settings: Settings, version: str):
    mlc = tracking.client(settings)
    return mlc.get_model_version(settings.ml.registered_model_name, str(version))


def why(
    values: dict[str, float | None],
    reference: dict[str, Any],
    segment_id: int,
    min_abs_z: float,
    top_n: int,
) -> list[dict[str, Any]]:
    """The segment's strongest features with the customer's value, the customer's z and the segment's z."""
    profile = reference.get("profile", {})
    population = profile.get("population", {})
    seg = profile.get("segments", {}).get(str(segment_id), {})
    log_features = set(reference.get("log_features", []))
    strongest = sorted(seg.items(), key=lambda kv: -abs(kv[1]))
    strongest = [(f, z) for f, z in strongest if abs(z) >= min_abs_z][:top_n] or strongest[:top_n]
    out = []
    for f, seg_z in strongest:
        raw = values.get(f)
        stats = population.get(f, {"mean": 0.0, "std": 1.0})
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            cust_z = None
        else:
            v = float(np.log1p(max(float(raw), 0.0))) if f in log_features else float(raw)
            cust_z = (v - stats["mean"]) / stats["std"]
        out.append(
            {
                "feature": f,
                "value": None if cust_z is None else float(raw),
                "customer_z": None if cust_z is None else round(cust_z, 3),
                "segment_z": round(float(seg_z), 3),
                "gap": None if cust_z is None else round(abs(cust_z - float(seg_z)), 3),
            }
        )
    return sorted(out, key=lambda r: (r["gap"] is None, r["gap"] if r["gap"] is not None else 0.0))


def explain(settings: Settings, customer_id: str) -> dict[str, Any]:
    """{customer_id, person_id, segmentations: [{segmentation, description, segment_id, segment_name, as_of_date,
    model_version, since, previous_segment, why: [{feature, value, customer_z, segment_z, gap}]}] (configuration
    order), missing: [lens without a published segment for the customer]}; raises LookupError for an unknown
    customer."""
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    ids: dict[str, Any] = {}
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "marts", "customer_segments"):
            raise LookupError("marts.customer_segments does not exist yet: run the pipeline (publish) first")
        for lens in settings.lenses:
            answer = _explain_lens(settings.for_lens(lens), con, customer_id)
            if answer is None:
                missing.append(lens)
                continue
            ids = {"customer_id": answer.pop("customer_id"), "person_id": answer.pop("person_id")}
            found.append(answer)
    if not found:
        raise LookupError(f"customer {customer_id!r} is not in marts.customer_segments")
    return {**ids, "segmentations": found, "missing": missing}


def _explain_lens(settings: Settings, con, customer_id: str) -> dict[str, Any] | None:
    cfg = settings.ml
    current = _current(con, customer_id, settings.lens)
    if current is None:
        return None
    since, previous = _since(con, current["person_id"], current["segment_id"], settings.lens)
    version = _model_version(settings, current["model_version"])
    model = tracking.load_version(settings, version)
    table = features.lens_table(settings)
    cols = [f for f in model.features if f in set(features.table_columns(con, table))]
    row = con.execute(
        f"select {', '.join(features.quote(c) for c in cols)} from {table} where person_id = ?",
        [current["person_id"]],
    ).fetchone() if cols else None
    values = dict(zip(cols, row, strict=True)) if row is not None else {}
    return {
        "segmentation": settings.lens,
        "description": settings.lens_settings.description,
        "customer_id": current["customer_id"],
        "person_id": current["person_id"],
        "segment_id": int(current["segment_id"]),
        "segment_name": current["segment_name"],
        "as_of_date": current["as_of_date"].isoformat(),
        "model_version": str(current["model_version"]),
        "since": since,
        "previous_segment": previous,
        "why": why(
            values,
            model.reference,
            int(current["segment_id"]),
            float(cfg.naming_min_abs_z),
            int(cfg.profile_top_features),
        ),
    }


def render(result: dict[str, Any]) -> str:
    """Human-readable text for `seg explain`: one block per segmentation."""
    lines = [f"customer {result['customer_id']} (person {result['person_id']})"]
    for lens in result["segmentations"]:
        previous = lens["previous_segment"]
        lines += [
            "",
            f"{lens['segmentation']} ({lens['description'].split(':')[0]}) on {lens['as_of_date']}: "
            f'segment {lens["segment_id"]} "{lens["segment_name"]}" (model v{lens["model_version"]})',
            f"  in this segment since {lens['since'] or 'unknown (no history)'}"
            + (f"; before: segment {previous['segment_id']} \"{previous['segment_name']}\" until {previous['until']}"
               if previous else ""),
            "  why (segment's strongest features, closest match first; z = standard deviations from all customers):",
        ]
        for r in lens["why"]:
            if r["customer_z"] is None:
                lines.append(f"    {r['feature']:<26} no value            segment z {r['segment_z']:+.2f}")
            else:
                lines.append(
                    f"    {r['feature']:<26} value {r['value']:>10.2f}  customer z {r['customer_z']:+.2f}  "
                    f"segment z {r['segment_z']:+.2f}"
                )
    for lens in result.get("missing") or []:
        lines += ["", f"{lens}: no published segment for this customer yet"]
    return "\n".join(lines)
