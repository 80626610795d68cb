"""The outcomes pass's HTML report: the arms' table, each challenger against the
champion, and charts of the rates (with their intervals) and the money per decision,
inline as the drift report's are (monitoring/report.py)."""

from __future__ import annotations

import html

from riskserve.monitoring.report import _figure_png


def _rates_chart(result: dict) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    arms = result["arms"] + [
        {**a, "arm": f"{a['arm']} (shadow)"} for a in result["shadow_arms"]
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, (name, title) in zip(
        axes,
        (("approval_rate", "approval (allow) rate"), ("bad_rate", "bad rate")),
        strict=True,
    ):
        values = np.array(
            [a[name] if a[name] is not None else np.nan for a in arms], float
        )
        low = np.array(
            [
                a[f"{name}_ci"][0] if a[f"{name}_ci"][0] is not None else np.nan
                for a in arms
            ]
        )
        high = np.array(
            [
                a[f"{name}_ci"][1] if a[f"{name}_ci"][1] is not None else np.nan
                for a in arms
            ]
        )
        x = np.arange(len(arms))
        ax.bar(x, values, yerr=[values - low, high - values], capsize=4)
        ax.set_xticks(x, [a["arm"] for a in arms], rotation=20, ha="right")
        ax.set_title(f"{title} ({1 - result['alpha']:.0%} Wilson interval)")
    return _figure_png(fig)


def _money_chart(result: dict) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    arms = result["arms"]
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(arms))
    for offset, name, label in (
        (-0.2, "expected_profit_per_decision", "expected"),
        (0.2, "realised_profit_per_decision", "realised (labels)"),
    ):
        ax.bar(
            x + offset,
            [a[name] if a[name] is not None else np.nan for a in arms],
            0.4,
            label=label,
        )
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xticks(x, [a["arm"] for a in arms])
    ax.set_ylabel("profit per decision")
    ax.legend(fontsize=8)
    return _figure_png(fig)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return html.escape(str(value))


ARM_COLUMNS = (
    "decisions",
    "share",
    "approval_rate",
    "approval_rate_ci",
    "labelled",
    "bad_rate",
    "bad_rate_ci",
    "expected_profit",
    "expected_profit_per_decision",
    "realised_profit",
    "realised_profit_per_decision",
    "fraud_caught_amount",
    "fraud_missed_amount",
    "versions",
)


def outcomes_html(result: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    e = html.escape
    window = result["window"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>riskserve outcomes: {e(result['experiment'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:75em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "font-size:90%}.worse{background:#fdd}.better{background:#dfd}</style>"
        "</head><body>",
        f"<h1>Experiment {e(result['experiment'])} ({e(result['model'])})</h1>",
        f"<p>Window {e(window['since'])} .. {e(window['until'])}; log "
        f"{e(result['log'])}. Labels: {result['labels']['matched']} of "
        f"{result['labels']['rows']} joined. Gain rate "
        f"{result['economics']['gain_rate']:g}, loss given default "
        f"{result['economics']['loss_given_default']:g}. Champion: "
        f"{e(result['champion'])}; tests at alpha {result['alpha']:g}, verdict on "
        f"{e(result['judged_on'])}.</p>",
        "<h2>Arms</h2><table><tr><th>arm</th>"
        + "".join(f"<th>{c.replace('_', ' ')}</th>" for c in ARM_COLUMNS)
        + "</tr>",
    ]
    for arm in result["arms"] + [
        {**a, "arm": f"{a['arm']} (shadow: would have)"} for a in result["shadow_arms"]
    ]:
        parts.append(
            f"<tr><td>{e(arm['arm'])}</td>"
            + "".join(f"<td>{_cell(arm.get(c))}</td>" for c in ARM_COLUMNS)
            + "</tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Challengers against the champion</h2>")
    parts.append(
        "<table><tr><th>arm</th><th>approval rate diff (p)</th>"
        "<th>bad rate diff (p)</th><th>profit/decision diff [CI] (bootstrap p)</th>"
        "<th>still needed per arm</th><th>verdict</th></tr>"
    )
    for c in result["comparisons"]:
        profit = c["realised_profit_per_decision"]
        parts.append(
            f"<tr class='{e(c['verdict'])}'><td>{e(c['arm'])}</td>"
            f"<td>{_cell(c['approval_rate']['difference'])} "
            f"({_cell(c['approval_rate']['p_value'])})</td>"
            f"<td>{_cell(c['bad_rate']['difference'])} "
            f"({_cell(c['bad_rate']['p_value'])})</td>"
            f"<td>{_cell(profit['difference'])} [{_cell(profit['ci'])}] "
            f"({_cell(profit['p_value'])})</td>"
            f"<td>{_cell(c['sample_size']['still_needed_per_arm'])}</td>"
            f"<td>{e(c['verdict'])}</td></tr>"
        )
    parts.append("</table>")
    parts.append(f"<img src='data:image/png;base64,{_rates_chart(result)}'>")
    parts.append(f"<img src='data:image/png;base64,{_money_chart(result)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
