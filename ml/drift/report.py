"""The drift report as one self-contained HTML page (`render_html`): decision, reasons, statistics tables and
embedded PNG plots of every feature's reference vs today distribution and of the PSI and segment-mix history.

Input is the report dict of `ml.drift.monitor.compute` (the same dict is written as drift_report.json); nothing
here reads the warehouse or writes a file.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml import plots
from ml.drift.rules import DRIFT, NONE, RETRAIN, STABLE, WARN, WATCH

_COLORS = {STABLE: "#2e7d32", WATCH: "#ef6c00", DRIFT: "#c62828", NONE: "#2e7d32", WARN: "#ef6c00", RETRAIN: "#c62828"}


def _trend_figures(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """PSI per feature and segment shares over time (history from monitoring.drift_metrics plus today)."""
    hist = [list(r) for r in report.get("history") or []]
    today = report["as_of_date"]
    hist += [[today, "feature", r["feature"], r["psi"], None] for r in report["features"]]
    mix = report.get("segment_mix") or {}
    hist += [[today, "segment_share", f"segment:{s}", None, v] for s, v in zip(mix.get("segments", []), mix.get("current", []), strict=True)]
    images = []
    for kind, title, column in (("feature", "PSI by feature over time", 3), ("segment_share", "Segment mix over time", 4)):
        series: dict[str, list[tuple[str, float]]] = {}
        for r in hist:
            if r[1] == kind and r[column] is not None:
                series.setdefault(r[2], []).append((r[0], float(r[column])))
        if not series or max(len(v) for v in series.values()) < 2:
            continue
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        fig.subplots_adjust(left=0.07, right=0.99, top=0.9, bottom=0.22)
        for name, points in sorted(series.items()):
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], marker=".", label=name)
        if kind == "feature":
            ax.axhline(float(report["thresholds"]["psi_watch"]), color="#ef6c00", ls="--", lw=1)
            ax.axhline(float(report["thresholds"]["psi_act"]), color="#c62828", ls="--", lw=1)
            ax.set_ylabel("PSI")
        else:
            ax.set_ylabel("share of customers")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.legend(fontsize=6, ncols=3)
        ax.set_title(title)
        images.append((title, plots.data_uri(fig, dpi=72)))
    return images


def _distribution_grid(panels: Sequence[tuple[str, Mapping[str, Any]]], ncols: int = 4) -> str:
    """One figure of small panels (reference vs today's share per bin), as a PNG data URI: one render for all."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (title, row) in zip(axes, panels, strict=False):
        x = np.arange(len(row["reference"]))
        ax.bar(x - 0.2, row["reference"], width=0.4, color="#90a4ae", label="reference")
        ax.bar(x + 0.2, row["current"], width=0.4, color=_COLORS[row["status"]], label="today")
        ax.set_title(f"{title}: PSI {row['psi']:.3f}", fontsize=8, color=_COLORS[row["status"]])
        ax.set_xticks([])  # bins are the reference's quantile bins, NULL last (labels in the JSON): text is slow
        ax.tick_params(axis="y", labelsize=6)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.subplots_adjust(hspace=0.45, wspace=0.25, left=0.04, right=0.99, top=0.95, bottom=0.03)
    return plots.data_uri(fig, dpi=72)


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page: decision, reasons, statistics tables and embedded PNG plots."""
    e = html.escape
    th = report["thresholds"]
    images: list[tuple[str, str]] = []
    psi_values = {r["feature"]: r["psi"] for r in report["features"]}
    mix = report.get("segment_mix") or {}
    if "psi" in mix:
        psi_values["segment mix"] = mix["psi"]
    if psi_values:
        images.append(("PSI by feature", plots.data_uri(plots.psi_bars(psi_values, th["psi_watch"], th["psi_act"]))))
    images += _trend_figures(report)
    if mix:
        labels = [f"{s}: {mix['names'].get(s, '')}" for s in mix["segments"]]
        fig = plots.distribution_shift("segment mix", labels, mix["reference"], mix["current"])
        images.append((f"Segment mix (PSI {_fmt(mix.get('psi'), '.3f')})", plots.data_uri(fig)))
    panels = [(f"today's {f['flow']}", f) for f in report.get("flows") or [] if "psi" in f]
    panels += [(r["feature"], r) for r in report["features"]]
    if panels:
        images.append((
            "Reference (grey) vs today, share per reference bin (quantile bins left to right, NULL last), every "
            "feature and today's orders",
            _distribution_grid(panels),
        ))

    decision = report["decision"]
    table_rows = "\n".join(
        f"<tr><td>{e(r['feature'])}{' *' if r.get('rescaled') else ''}</td><td>{r['psi']:.4f}</td>"
        f"<td>{r['psi_critical']:.4f}</td><td>{_fmt(r['ks'])}</td><td>{_fmt(r['wasserstein'])}</td>"
        f"<td style='color:{_COLORS[r['status']]}'>{e(r['status'])}</td>"
        f"<td>{_fmt(r['reference_mean'], '.4g')}</td><td>{_fmt(r['mean'], '.4g')}</td>"
        f"<td>{r['reference'][-1]:.3f}</td><td>{r['current'][-1]:.3f}</td></tr>"
        for r in report["features"]
    )
    seg_rows = ""
    if mix:
        shift = mix.get("centroid_shift", {})
        seg_rows = "\n".join(
            f"<tr><td>{e(s)}</td><td>{e(mix['names'].get(s, ''))}</td><td>{ref:.3f}</td><td>{cur:.3f}</td>"
            f"<td>{_fmt(shift.get(s), '.3f')}</td>"
            f"<td>{e(', '.join(f'{k} {v:+.2f}' for k, v in mix.get('segment_feature_shift', {}).get(s, {}).items()))}</td></tr>"
            for s, ref, cur in zip(mix["segments"], mix["reference"], mix["current"], strict=True)
        )
    seg_summary = ""
    if mix:
        chi = mix.get("chi_square") or {}
        seg_summary = (
            f"<p>Segment mix: PSI {_fmt(mix.get('psi'))} (noise floor {_fmt(mix.get('psi_critical'))}), "
            f"chi-square p {_fmt(chi.get('p_value'), '.3g')}, Jensen-Shannon {_fmt(mix.get('js'))} bits; "
            f"mean distance to nearest centroid {_fmt(mix.get('mean_distance'), '.3f')} vs reference "
            f"{_fmt(mix.get('reference_mean_distance'), '.3f')} (x{_fmt(mix.get('distance_ratio'), '.2f')}); "
            f"switched segment since last run: {_fmt(mix.get('switch_share'), '.1%') or 'n/a'} "
            f"of {mix.get('switch_compared', 0)} compared; sample {mix.get('sample_rows')} rows.</p>"
        )
    flow_rows = "\n".join(
        f"<tr><td>{e(f['flow'])}</td><td>{f['orders']}</td><td>{f.get('reference_orders', '')}</td>"
        f"<td>{_fmt(f.get('psi'))}</td><td>{_fmt(f.get('js'))}</td><td>{_fmt(f.get('p_value'), '.3g')}</td>"
        f"<td style='color:{_COLORS[f['status']]}'>{e(f['status'])}</td><td>{e(f.get('note', ''))}</td></tr>"
        for f in report.get("flows") or []
    )
    figures = "\n".join(
        f"<figure><figcaption>{e(title)}</figcaption><img src='{uri}' alt='{e(title)}'></figure>" for title, uri in images
    )
    reasons = "".join(f"<li>{e(r)}</li>" for r in report["reasons"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {e(report["as_of_date"])} {e(str(report.get("segmentation") or ""))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%}}
figure{{display:inline-block;margin:0.5em;vertical-align:top}}</style></head>
<body>
<h1>Drift, {e(report["as_of_date"])}{e(", segmentation " + report["segmentation"]) if report.get("segmentation") else ""}</h1>
<p>Model version: {e(str(report.get("model_version")))} &middot; rows today: {e(str(report.get("rows")))}
&middot; reference rows: {e(str(report.get("reference_rows")))} (as of {e(str(report.get("reference_as_of_date")))})
&middot; history {e(str(report.get("history_days")))} days vs {e(str(report.get("reference_history_days")))} at
training (lifetime features marked * are compared as rates, factor {_fmt(report.get("rescale_factor"), ".3f")})</p>
<h2 style="color:{_COLORS[decision]}">Decision: {e(decision)}</h2>
<ul>{reasons}</ul>
<p>Thresholds: watch PSI &ge; {th["psi_watch"]}, act PSI &ge; {th["psi_act"]}, and above the sampling-noise floor
(chi-square, alpha {th.get("psi_alpha")}); retrain when the share of drifted features &ge; {th["dataset_drift_share"]},
the segment mix drifts, the distance to the nearest centroid grows by x{th.get("distance_ratio_act")}, or today's
{e(", ".join(th.get("flow_retrain_signals") or []))} changed (once: the same change only warns for
{th.get("flow_retrain_memory_days")} days after the retrain it caused);
{th["psi_bins"]} quantile bins + NULL. KS on the quantile sketches; Wasserstein in reference standard deviations.</p>
<h2>Features</h2>
<table><thead><tr><th>feature</th><th>PSI</th><th>noise floor</th><th>KS</th><th>Wasserstein (sd)</th><th>status</th>
<th>mean (ref)</th><th>mean (today)</th><th>NULL share (ref)</th><th>NULL share (today)</th></tr></thead>
<tbody>
{table_rows}
</tbody></table>
<h2>Today's activity (marts.orders of the day vs the same weekday before training)</h2>
<table><thead><tr><th>flow</th><th>orders today</th><th>reference orders</th><th>PSI</th><th>Jensen-Shannon</th>
<th>chi-square p</th><th>status</th><th>compared with</th></tr></thead><tbody>
{flow_rows}
</tbody></table>
<h2>Segments</h2>
{seg_summary}
<table><thead><tr><th>segment</th><th>name</th><th>share (ref)</th><th>share (today)</th><th>centroid shift</th>
<th>largest per-segment feature shifts (sd)</th></tr></thead><tbody>
{seg_rows}
</tbody></table>
{figures}
</body></html>
"""

