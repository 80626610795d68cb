"""The rollout panel's data: which revision serves what share of requests, and the
distribution of its scores, read from the local platform gateway's `/platform/traffic`.

The gateway's counters are totals since it started; the share "since the last refresh"
is the difference between two readings, which is what a canary looks like right now.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import httpx
from riskserve.app.render import error_html, histogram_html, note_html


class TrafficError(Exception):
    """The traffic endpoint failed; the message is plain words."""


@dataclass(frozen=True)
class RevisionTraffic:
    name: str
    percent: float
    ready: bool
    requests: int
    errors: int
    score_edges: tuple[float, ...]
    score_counts: tuple[int, ...]


Traffic = dict[str, list[RevisionTraffic]]


def parse_traffic(body: object) -> Traffic:
    if not isinstance(body, dict) or not isinstance(
        body.get("inferenceservices"), dict
    ):
        raise TrafficError("the gateway's traffic answer has no 'inferenceservices'")
    traffic: Traffic = {}
    try:
        for service, state in body["inferenceservices"].items():
            revisions = []
            for item in state.get("revisions", []):
                edges = tuple(float(e) for e in item.get("score_edges") or ())
                counts = tuple(int(c) for c in item.get("score_counts") or ())
                if edges and len(counts) != len(edges) - 1:
                    raise ValueError(
                        f"{item['name']} has {len(counts)} score counts for "
                        f"{len(edges)} edges"
                    )
                revisions.append(
                    RevisionTraffic(
                        name=str(item["name"]),
                        percent=float(item.get("percent", 0)),
                        ready=bool(item.get("ready", False)),
                        requests=int(item.get("requests", 0)),
                        errors=int(item.get("errors", 0)),
                        score_edges=edges,
                        score_counts=counts,
                    )
                )
            traffic[str(service)] = revisions
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise TrafficError(
            f"the gateway's traffic answer is malformed ({exc})"
        ) from None
    return traffic


def fetch_traffic(
    url: str, api_key: str | None = None, timeout: float = 5.0
) -> Traffic:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise TrafficError(
            f"The gateway at {url} did not answer within {timeout:g} s."
        ) from None
    except httpx.HTTPError:
        raise TrafficError(
            f"The gateway at {url} cannot be reached. Is the local platform running?"
        ) from None
    if response.status_code != 200:
        raise TrafficError(
            f"The gateway at {url} answered HTTP {response.status_code}: "
            f"{response.text.strip()[:200]}"
        )
    try:
        return parse_traffic(response.json())
    except ValueError:
        raise TrafficError(f"The gateway at {url} did not answer with JSON.") from None


def _counts(traffic: Traffic | None) -> dict[tuple[str, str], int]:
    if not traffic:
        return {}
    return {(s, r.name): r.requests for s, revs in traffic.items() for r in revs}


def traffic_html(traffic: Traffic, previous: Traffic | None = None) -> str:
    """One table and one score histogram per InferenceService."""
    if not traffic:
        return note_html("The gateway serves no InferenceService yet.")
    before = _counts(previous)
    parts = []
    for service, revisions in traffic.items():
        total = sum(r.requests for r in revisions)
        deltas = {
            r.name: max(0, r.requests - before.get((service, r.name), 0))
            for r in revisions
        }
        recent = sum(deltas.values()) if previous is not None else 0
        rows = []
        for r in revisions:
            share = f"{r.requests / total:.1%}" if total else "–"
            now = f"{deltas[r.name] / recent:.1%}" if recent else "–"
            state = "ready" if r.ready else "not ready"
            rows.append(
                f'<tr class="rs-revision-row"><td>{escape(r.name)}</td>'
                f"<td>{r.percent:g}%</td><td>{state}</td><td>{r.requests}</td>"
                f'<td class="rs-share">{share}</td><td>{now}</td><td>{r.errors}</td></tr>'
            )
        table = (
            f'<table class="rs-traffic" data-service="{escape(service)}" '
            'style="width:100%;border-collapse:collapse">'
            "<tr><th>revision</th><th>configured split</th><th>state</th>"
            "<th>requests</th><th>share of requests</th><th>share since last refresh</th>"
            f"<th>errors</th></tr>{''.join(rows)}</table>"
        )
        series = {r.name: list(r.score_counts) for r in revisions if r.score_counts}
        edges = next((r.score_edges for r in revisions if r.score_edges), ())
        histogram = histogram_html(f"{service}: scores by revision", edges, series)
        parts.append(
            f'<div style="margin-bottom:16px"><h3>{escape(service)}</h3>'
            f"<div>{total} requests in all</div>{table}{histogram}</div>"
        )
    return "".join(parts)


def rollout_html(
    url: str | None, api_key: str | None, previous: Traffic | None
) -> tuple[str, Traffic | None]:
    """The panel's HTML and the reading to compare the next refresh with."""
    if url is None:
        return (
            note_html(
                "The rollout panel needs the local platform gateway: set "
                "RISKSERVE_APP_GATEWAY_URL (e.g. http://127.0.0.1:8000)."
            ),
            None,
        )
    try:
        traffic = fetch_traffic(url, api_key)
    except TrafficError as exc:
        return error_html(str(exc)), previous
    return traffic_html(traffic, previous), traffic
