"""What a monitoring pass shows: a one-screen terminal summary, the JSON object, and an
HTML report with its plots inline (reference against live histograms of each drifted
column, PSI per feature, score drift and volume over time)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json

from riskserve.monitoring.analysis import Analysis, VersionAnalysis
from riskserve.monitoring.drift import ColumnDrift


def terminal_summary(analysis: Analysis) -> str:
    window = analysis.window.as_dict()
    lines = [
        f"{analysis.model}: {analysis.rows} rows in {analysis.records} records, "
        f"{window['since']} .. {window['until']} ({analysis.log})"
    ]
    if analysis.corrupt_count:
        lines.append(
            f"  {analysis.corrupt_count} corrupt log lines skipped, first: "
            f"{analysis.corrupt[0]}"
        )
    if analysis.rows == 0:
        lines.append("  no traffic in this window: nothing to judge")
        return "\n".join(lines)
    for version in analysis.versions:
        lines.append(_version_lines(version, analysis))
    lines.append(
        "DRIFT: " + ", ".join(analysis.drifted)
        if analysis.drifted
        else "no drift (PSI < "
        f"{analysis.thresholds.psi:g} or p >= {analysis.thresholds.p_value:g})"
    )
    return "\n".join(lines)


def _version_lines(version: VersionAnalysis, analysis: Analysis) -> str:
    head = f"  v{version.version}: {version.rows} rows"
    if not version.judged:
        head += " (too few to judge)"
    rows = [head, f"    {'column':<34}{'PSI':>8}{'test p':>10}{'missing':>9}  flag"]
    for c in (*version.features, *version.outputs):
        note = "DRIFT" if c.drifted and version.judged else ""
        if c.out_of_range:
            note += f" {c.out_of_range} {'unseen' if c.kind == 'categorical' else 'out of range'}"
        rows.append(
            f"    {c.name[:33]:<34}{c.psi:>8.3f}{c.p_value:>10.2g}"
            f"{c.missing_rate:>9.1%}  {note.strip()}".rstrip()
        )
    if version.missing_features:
        rows.append(f"    not in the log: {', '.join(version.missing_features)}")
    return "\n".join(rows)


def to_json(analysis: Analysis, report: str | None = None) -> str:
    summary = analysis.summary()
    summary["report"] = report
    return json.dumps(summary, indent=1, default=float)


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _histogram(column: ColumnDrift, version: str) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(column.bins))
    ax.bar(x - 0.2, column.reference_share, 0.4, label="reference (training)")
    ax.bar(x + 0.2, column.live_share, 0.4, label="live")
    ax.set_xticks(x, column.bins, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{column.name} (v{version}): PSI {column.psi:.3f}")
    ax.legend(fontsize=8)
    return _figure_png(fig)


def _psi_bars(version: VersionAnalysis, threshold: float) -> str:
    import matplotlib.pyplot as plt

    columns = [*version.features, *version.outputs]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(columns) + 1))
    ax.barh(
        [c.name for c in columns],
        [c.psi for c in columns],
        color=["tab:red" if c.drifted else "tab:blue" for c in columns],
    )
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel(f"PSI (dashed: threshold {threshold:g})")
    ax.set_title(f"PSI per column, v{version.version}")
    return _figure_png(fig)


def _over_time(analysis: Analysis) -> str | None:
    import matplotlib.pyplot as plt

    if not analysis.volume_per_hour:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    for version in analysis.versions:
        if version.score_over_time:
            hours = [
                dt.datetime.fromtimestamp(h, dt.UTC)
                for h, _, _ in version.score_over_time
            ]
            top.plot(
                hours,
                [p for _, p, _ in version.score_over_time],
                marker="o",
                label=f"v{version.version} {version.score_name}",
            )
    top.axhline(analysis.thresholds.psi, color="k", linestyle="--", linewidth=1)
    top.set_ylabel("score PSI per hour")
    top.legend(fontsize=8)
    bottom.bar(
        [dt.datetime.fromtimestamp(h, dt.UTC) for h, _ in analysis.volume_per_hour],
        [n for _, n in analysis.volume_per_hour],
        width=1 / 24 * 0.9,
    )
    bottom.set_ylabel("rows per hour")
    fig.autofmt_xdate()
    return _figure_png(fig)


def html_report(analysis: Analysis) -> str:
    import matplotlib

    matplotlib.use("Agg")
    e = html.escape
    window = analysis.window.as_dict()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>riskserve monitor: {e(analysis.model)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:90%}.drift{background:#fdd}</style></head><body>",
        f"<h1>{e(analysis.model)}: {e(analysis.status)}</h1>",
        f"<p>Window {e(window['since'])} .. {e(window['until'])}; log {e(analysis.log)}; "
        f"{analysis.rows} rows in {analysis.records} records from {analysis.files} "
        "files.</p>",
    ]
    if analysis.corrupt_count:
        parts.append(
            f"<p><b>{analysis.corrupt_count} corrupt log lines skipped</b>:</p><ul>"
            + "".join(f"<li><code>{e(c)}</code></li>" for c in analysis.corrupt)
            + "</ul>"
        )
    drifted = analysis.drifted
    parts.append(
        f"<p><b>Drifted:</b> {e(', '.join(drifted))}</p>"
        if drifted
        else "<p>Nothing drifted.</p>"
    )
    timeline = _over_time(analysis)
    if timeline:
        parts.append("<h2>Score drift and volume over time</h2>")
        parts.append(f"<img src='data:image/png;base64,{timeline}'>")
    for version in analysis.versions:
        parts.append(f"<h2>Version {e(version.version)}: {version.rows} rows</h2>")
        parts.append(f"<p>Reference: {e(version.reference)}.</p>")
        if not version.judged:
            parts.append("<p>Too few rows to judge.</p>")
        parts.append(
            "<table><tr><th>column</th><th>PSI</th><th>test</th><th>p</th>"
            "<th>missing (training)</th><th>missing (live)</th>"
            "<th>out of range / unseen</th><th>drifted</th></tr>"
        )
        for c in (*version.features, *version.outputs):
            unseen = ", ".join(f"{k}: {v}" for k, v in c.unseen.items())
            parts.append(
                f"<tr class='{'drift' if c.drifted else ''}'><td>{e(c.name)}</td>"
                f"<td>{c.psi:.4f}</td><td>{c.test}</td><td>{c.p_value:.3g}</td>"
                f"<td>{c.missing_rate_reference:.2%}</td><td>{c.missing_rate:.2%}</td>"
                f"<td>{c.out_of_range} {e(unseen)}</td>"
                f"<td>{'yes: ' + e('; '.join(c.reasons)) if c.drifted else ''}</td></tr>"
            )
        parts.append("</table>")
        parts.append(
            f"<img src='data:image/png;base64,"
            f"{_psi_bars(version, analysis.thresholds.psi)}'>"
        )
        for c in (*version.features, *version.outputs):
            if c.drifted:
                parts.append(f"<h3>{e(c.name)}</h3>")
                parts.append(
                    f"<img src='data:image/png;base64,{_histogram(c, version.version)}'>"
                )
    parts.append("</body></html>")
    return "\n".join(parts)
