"""The experiments panel's data: an experiment's arms, their shares and outcomes so
far, read as data from the monitor's outcomes report (`riskserve monitor outcomes
MODEL ... --json`, a file or an http(s) URL): the app does not import the monitor.

Shown: a table per arm (share, approval rate and bad rate with their intervals,
expected and realised profit per decision, fraud caught and missed), the shadow arms'
"would have" figures, each challenger against the champion with its p-values and
verdict, and bar charts of the bad rate (with its interval) and of the profit per
decision by arm.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import httpx
from riskserve.app.render import error_html, note_html

GREEN, RED, GREY, BLUE = "#2e7d32", "#c62828", "#757575", "#1565c0"
VERDICT_COLOURS = {"better": GREEN, "worse": RED, "inconclusive": GREY}
ARM_KEYS = ("arm", "decisions", "approval_rate", "bad_rate")


class OutcomesError(Exception):
    """The outcomes report cannot be read or is not one; the message is plain words."""


def load_outcomes(where: str, timeout: float = 5.0) -> dict:
    """The report at `where` (a path, or an http(s) URL), checked for what the panel
    shows."""
    if where.startswith(("http://", "https://")):
        try:
            response = httpx.get(where, timeout=timeout)
        except httpx.HTTPError as exc:
            raise OutcomesError(
                f"The outcomes report at {where} cannot be fetched ({type(exc).__name__})."
            ) from None
        if response.status_code != 200:
            raise OutcomesError(
                f"The outcomes report at {where} answered HTTP {response.status_code}."
            )
        text = response.text
    else:
        try:
            text = Path(where).read_text()
        except OSError as exc:
            raise OutcomesError(
                f"The outcomes report {where} cannot be read ({exc.strerror})."
            ) from None
    try:
        report = json.loads(text)
    except ValueError:
        raise OutcomesError(
            f"{where} is not JSON: write it with `riskserve monitor outcomes ... --json`."
        ) from None
    return check_outcomes(report, where)


def check_outcomes(report: object, where: str) -> dict:
    if not isinstance(report, dict):
        raise OutcomesError(f"{where} is not an outcomes report (not an object).")
    for key in ("experiment", "model", "champion", "arms", "comparisons"):
        if key not in report:
            raise OutcomesError(f"{where} is not an outcomes report (no {key!r}).")
    arms = report["arms"]
    if not isinstance(arms, list) or not all(
        isinstance(a, dict) and all(k in a for k in ARM_KEYS) for a in arms
    ):
        raise OutcomesError(
            f"{where}: 'arms' must be a list of arms with {', '.join(ARM_KEYS)}."
        )
    return report


def _rate(value) -> str:
    return "–" if value is None else f"{value:.2%}"


def _interval(pair) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return ""
    return f' <span style="color:#777">[{pair[0]:.2%}, {pair[1]:.2%}]</span>'


def _money(value) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _p(value) -> str:
    return "–" if value is None else f"{value:.3g}"


def _bars(title: str, rows: list[tuple[str, float | None, str]], kind: str) -> str:
    """Horizontal bars, one per arm (negative money to the left of the zero line)."""
    values = [abs(v) for _, v, _ in rows if v is not None]
    top = max(values, default=0.0) or 1.0
    signed = any(v is not None and v < 0 for _, v, _ in rows)
    lines = []
    for name, value, label in rows:
        width = 0.0 if value is None else abs(value) / top * (50 if signed else 100)
        left = (
            50 - width
            if signed and value is not None and value < 0
            else (50 if signed else 0)
        )
        colour = RED if value is not None and value < 0 else BLUE
        lines.append(
            f'<div class="rs-bar-row" data-arm="{escape(name)}" '
            'style="display:flex;align-items:center;gap:8px;margin:2px 0">'
            f'<div style="width:140px">{escape(name)}</div>'
            '<div style="flex:1;position:relative;height:14px;background:#f3f3f3">'
            f'<div style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;'
            f'height:100%;background:{colour}"></div></div>'
            f'<div style="width:170px">{escape(label)}</div></div>'
        )
    return (
        f'<div class="rs-chart" data-chart="{kind}" style="margin:10px 0">'
        f"<b>{escape(title)}</b>{''.join(lines)}</div>"
    )


def outcomes_html(report: dict) -> str:
    e = escape
    fraud = report.get("model_kind") == "fraud"
    rate_name = "allow rate" if fraud else "approval rate"
    window = report.get("window") or {}
    economics = report.get("economics") or {}
    head = (
        f"<h3>{e(str(report['experiment']))} ({e(str(report['model']))})</h3>"
        f"<div>Window {e(str(window.get('since', '?')))} .. "
        f"{e(str(window.get('until', '?')))}; champion "
        f"<b>{e(str(report['champion']))}</b>; gain rate "
        f"{economics.get('gain_rate', '?')}, loss given default "
        f"{economics.get('loss_given_default', '?')}; tests at alpha "
        f"{report.get('alpha', '?')}, verdict on {e(str(report.get('judged_on', '?')))}."
        "</div>"
    )
    columns = ["arm", "decisions", "share", rate_name, "labelled", "bad rate"]
    columns += ["expected / decision", "realised / decision"]
    if fraud:
        columns += ["fraud caught", "fraud missed"]
    rows = []
    shadows = [{**a, "shadow": True} for a in report.get("shadow_arms") or []]
    for arm in [*report["arms"], *shadows]:
        name = arm["arm"] + (" (shadow: would have)" if arm.get("shadow") else "")
        cells = [
            e(name),
            str(arm["decisions"]),
            "–" if arm.get("shadow") else _rate(arm.get("share")),
            _rate(arm["approval_rate"]) + _interval(arm.get("approval_rate_ci")),
            str(arm.get("labelled", "–")),
            _rate(arm["bad_rate"]) + _interval(arm.get("bad_rate_ci")),
            _money(arm.get("expected_profit_per_decision")),
            _money(arm.get("realised_profit_per_decision")),
        ]
        if fraud:
            cells += [
                _money(arm.get("fraud_caught_amount")),
                _money(arm.get("fraud_missed_amount")),
            ]
        rows.append(
            f'<tr class="rs-arm-row" data-arm="{e(arm["arm"])}">'
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    table = (
        '<table class="rs-arms" style="width:100%;border-collapse:collapse"><tr>'
        + "".join(f"<th>{c}</th>" for c in columns)
        + f"</tr>{''.join(rows)}</table>"
    )
    comparisons = []
    for c in report["comparisons"]:
        verdict = str(c.get("verdict", "inconclusive"))
        profit = c.get("realised_profit_per_decision") or {}
        bad = c.get("bad_rate") or {}
        still = (c.get("sample_size") or {}).get("still_needed_per_arm")
        comparisons.append(
            f'<li class="rs-comparison" data-arm="{e(str(c.get("arm")))}">'
            f"<b>{e(str(c.get('arm')))}</b> vs {e(str(c.get('against')))}: bad rate "
            f"{_rate(bad.get('difference'))} (p {_p(bad.get('p_value'))}), profit per "
            f"decision {_money(profit.get('difference'))} (p "
            f"{_p(profit.get('p_value'))})"
            + (f", {still:,} more labelled decisions per arm needed" if still else "")
            + f' → <b class="rs-verdict" style="color:'
            f'{VERDICT_COLOURS.get(verdict, GREY)}">{e(verdict.upper())}</b></li>'
        )
    charts = _bars(
        "bad rate among approved",
        [(a["arm"], a["bad_rate"], _rate(a["bad_rate"])) for a in report["arms"]],
        "bad_rate",
    ) + _bars(
        "realised profit per decision",
        [
            (
                a["arm"],
                a.get("realised_profit_per_decision"),
                _money(a.get("realised_profit_per_decision")),
            )
            for a in report["arms"]
        ],
        "profit",
    )
    return (
        f'<div class="rs-experiment">{head}{table}'
        f"<ul>{''.join(comparisons) or '<li>No challenger yet.</li>'}</ul>"
        f"{charts}</div>"
    )


def experiments_html(where: str | None) -> str:
    """The panel: the report at `where`, or why there is none."""
    if where is None:
        return note_html(
            "The experiments panel shows an outcomes report: set "
            "RISKSERVE_APP_OUTCOMES_REPORT to the JSON file (or URL) that `riskserve "
            "monitor outcomes MODEL --experiment FILE --labels FILE --json` writes."
        )
    try:
        return outcomes_html(load_outcomes(where))
    except OutcomesError as exc:
        return error_html(str(exc))
