"""The Gradio analyst app: fraud, credit, batch and rollout tabs over the v2 client.

Each form is built from its model's v2 metadata when the app starts (from the shared
feature spec if the model cannot be reached then; requests are still built from the
metadata, fetched when the model answers). Every handler turns failures into a sentence
on the page and logs the details: an analyst never sees a stack trace, and the app keeps
serving the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import gradio as gr
from riskserve.app.batch import PROBABILITY_EDGES, BatchError, BatchOutcome, score_csv
from riskserve.app.examples import (
    CREDIT_EXAMPLES,
    FRAUD_EXAMPLES,
    UNKNOWN_CARD_EXAMPLE,
    UNKNOWN_CARD_LABEL,
    UNKNOWN_CUSTOMER_EXAMPLE,
    UNKNOWN_CUSTOMER_LABEL,
    load_examples_file,
)
from riskserve.app.experiments import experiments_html
from riskserve.app.fields import (
    MISSING,
    TIMESTAMP_KIND,
    Field,
    fields_from_metadata,
    fields_from_spec,
)
from riskserve.app.render import (
    credit_answer_html,
    error_html,
    fraud_answer_html,
    histogram_counts,
    histogram_html,
    note_html,
)
from riskserve.app.rollout import Traffic, rollout_html
from riskserve.app.scored_files import ScoredFiles
from riskserve.app.settings import AppSettings
from riskserve.app.v2_client import (
    EndpointError,
    InferenceResult,
    ModelMetadata,
    V2Client,
)
from riskserve.model.specs import APPROVED, CREDIT, FRAUD, IS_FRAUD, ModelSpec

log = logging.getLogger("app")

SPECS = {"fraud": FRAUD, "credit": CREDIT}
EXAMPLES = {"fraud": FRAUD_EXAMPLES, "credit": CREDIT_EXAMPLES}
RENDER: dict[str, Callable[[InferenceResult, ModelMetadata], str]] = {
    "fraud": fraud_answer_html,
    "credit": credit_answer_html,
}
UNEXPECTED = "Something went wrong in the app ({}). The details are in the app's log."


@dataclass
class ModelEndpoint:
    """One model the app calls: its client, its form fields and how they were found."""

    kind: str
    client: V2Client
    fields: list[Field]
    status: str
    raw_events: bool = False

    @classmethod
    def connect(cls, kind: str, settings: AppSettings) -> ModelEndpoint:
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        client = V2Client(
            kind,
            settings.model_url(kind),
            api_key,
            settings.connect_timeout,
            settings.request_timeout,
        )
        spec: ModelSpec = SPECS[kind]
        try:
            metadata = client.metadata()
        except EndpointError as exc:
            log.warning("%s metadata unavailable at start: %s", kind, exc)
            return cls(
                kind,
                client,
                fields_from_spec(spec),
                f"{exc} The form below follows the built-in {kind} feature spec until "
                "the model answers.",
            )
        if metadata.takes_raw_events:
            entity = "a card and a transaction" if kind == "fraud" else "a raw event"
            if kind == "credit":
                entity = "a customer and a basket"
            status = (
                f"{kind} model `{metadata.name}` at {client.model_url}: behind a "
                f"transformer, which takes {entity} ({len(metadata.inputs)} raw "
                "fields) and computes the model's features from the history it "
                "keeps."
            )
        else:
            version = ", ".join(metadata.versions) or "unknown"
            status = (
                f"{kind} model `{metadata.name}` at {client.model_url}: version "
                f"{version}, {len(metadata.inputs)} inputs."
            )
        return cls(
            kind,
            client,
            fields_from_metadata(metadata, spec),
            status,
            metadata.takes_raw_events,
        )

    def examples(
        self, from_file: dict[str, dict[str, dict[str, object]]]
    ) -> dict[str, dict[str, object]]:
        """The examples its form offers: the built-in feature rows for a bare
        predictor; for a transformer, the examples file's raw events (real ids of
        the demo's history) and a card or customer never seen."""
        if not self.raw_events:
            return EXAMPLES[self.kind]
        examples = dict(from_file.get(self.kind, {}))
        if self.kind == "fraud":
            examples[UNKNOWN_CARD_LABEL] = UNKNOWN_CARD_EXAMPLE
        if self.kind == "credit":
            examples[UNKNOWN_CUSTOMER_LABEL] = UNKNOWN_CUSTOMER_EXAMPLE
        return examples


class _ComponentArgs(TypedDict):
    """The keyword arguments every input component of a form shares."""

    label: str
    info: str | None
    elem_id: str


def _component(field: Field) -> gr.components.Component:
    info = field.description
    if field.minimum is not None or field.maximum is not None:
        low = "" if field.minimum is None else f"{field.minimum:g}"
        high = "" if field.maximum is None else f"{field.maximum:g}"
        info = f"{info} [{low} … {high}]".strip()
    if field.nullable:
        info = f"{info} (may be left missing)".strip()
    common: _ComponentArgs = {
        "label": field.label,
        "info": info or None,
        "elem_id": f"field-{field.name}",
    }
    if field.kind == TIMESTAMP_KIND:
        return gr.Textbox(value="", placeholder="now", **common)
    if field.datatype == "BYTES":
        if field.categories:
            return gr.Dropdown(
                list(field.categories), value=field.categories[0], **common
            )
        return gr.Textbox(**common)
    if field.kind == "binary" and not field.nullable:
        return gr.Checkbox(
            value=False,
            label=field.label,
            info=info or None,
            elem_id=f"field-{field.name}",
        )
    if (
        field.kind == "ordinal"
        and field.minimum is not None
        and field.maximum is not None
    ):
        codes = [str(v) for v in range(int(field.minimum), int(field.maximum) + 1)]
        choices = [MISSING, *codes] if field.nullable else codes
        return gr.Dropdown(choices, value=choices[0], **common)
    default = None if field.nullable else (field.minimum or 0.0)
    if field.minimum is not None and field.minimum < 0 and field.maximum is not None:
        default = 0.0  # a latitude or longitude: the middle, not the edge
    return gr.Number(value=default, **common)


def _component_value(field: Field, value: object) -> object:
    """An example value as the field's component shows it."""
    if field.kind == TIMESTAMP_KIND:
        return "" if value is None else str(value)
    if field.datatype == "BYTES":
        return value
    if field.kind == "binary" and not field.nullable:
        return bool(value)
    if (
        field.kind == "ordinal"
        and field.minimum is not None
        and field.maximum is not None
    ):
        return MISSING if value is None else str(int(value))  # type: ignore[call-overload]
    return value


def score_form(endpoint: ModelEndpoint, values: Sequence[object]) -> str:
    """The answer for one form, as HTML; errors in plain words."""
    try:
        columns, problems = {}, []
        for field, raw in zip(endpoint.fields, values, strict=True):
            try:
                columns[field.name] = [field.parse(raw)]
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            return error_html("Please correct: " + "; ".join(problems) + ".")
        result = endpoint.client.infer(columns)
        return RENDER[endpoint.kind](result, endpoint.client.metadata())
    except EndpointError as exc:
        return error_html(str(exc))
    except Exception as exc:
        log.exception("scoring a %s form failed", endpoint.kind)
        return error_html(UNEXPECTED.format(type(exc).__name__))


def batch_summary_html(kind: str, outcome: BatchOutcome, shown: int = 50) -> str:
    lines = [f"<b>{outcome.rows}</b> rows read, <b>{outcome.scored}</b> scored"]
    if outcome.decision_name == IS_FRAUD:
        lines.append(f"<b>{outcome.decisions[True]}</b> flagged as fraud")
    elif outcome.decision_name == APPROVED:
        lines.append(
            f"<b>{outcome.decisions[True]}</b> approved, "
            f"<b>{outcome.decisions[False]}</b> declined"
        )
    lines.append(f"<b>{len(outcome.bad_rows)}</b> bad rows not scored")
    if outcome.first_reasons:
        lines.append(
            "first reason of the declines: "
            + ", ".join(
                f"{_escape(name)} ({count})"
                for name, count in outcome.first_reasons.most_common(3)
            )
        )
    served = ", ".join(
        f"version {version} / {revision}: {count}"
        for (version, revision), count in outcome.served_by.most_common()
    )
    body = f'<div class="rs-batch-summary">{"; ".join(lines)}.'
    if served:
        body += f"<div>Served by {served}.</div>"
    if outcome.bad_rows:
        items = "".join(
            f"<li>line {bad.line}: {_escape(bad.message)}</li>"
            for bad in outcome.bad_rows[:shown]
        )
        more = len(outcome.bad_rows) - shown
        tail = f"<li>… and {more} more (see the error column)</li>" if more > 0 else ""
        body += f'<ul class="rs-bad-rows">{items}{tail}</ul>'
    return body + "</div>"


def _escape(text: str) -> str:
    from html import escape

    return escape(text)


def build_app(settings: AppSettings) -> gr.Blocks:
    """The app; ExamplesError (one line) when the examples file cannot be used."""
    file_examples = (
        load_examples_file(settings.examples_file) if settings.examples_file else {}
    )
    endpoints = {
        kind: ModelEndpoint.connect(kind, settings) for kind in ("fraud", "credit")
    }
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    retention = settings.file_retention_seconds
    every = max(1, min(60, retention // 2))
    scored_files = ScoredFiles(retention, every)

    with gr.Blocks(
        title="riskserve analyst",
        analytics_enabled=False,
        # Uploads and downloads hold customers' data: kept `retention` seconds.
        delete_cache=(every, retention),
    ) as demo:
        gr.Markdown(
            "# riskserve analyst\nScore card transactions and credit applicants with "
            "the served models, score CSV files, watch canary rollouts and the "
            "outcomes of experiments."
        )
        for kind, title in (("fraud", "Fraud check"), ("credit", "Credit decision")):
            endpoint = endpoints[kind]
            with gr.Tab(title, id=kind):
                gr.Markdown(endpoint.status, elem_classes=["rs-status"])
                with gr.Row():
                    with gr.Column(scale=3):
                        inputs = [_component(field) for field in endpoint.fields]
                        button = gr.Button(
                            "Score", variant="primary", elem_id=f"score-{kind}"
                        )
                    with gr.Column(scale=2):
                        answer = gr.HTML(
                            note_html("Fill in the fields and press Score."),
                            elem_id=f"answer-{kind}",
                        )
                        examples = endpoint.examples(file_examples)
                        gr.Examples(
                            examples=[
                                [
                                    _component_value(field, example.get(field.name))
                                    for field in endpoint.fields
                                ]
                                for example in examples.values()
                            ],
                            inputs=inputs,
                            example_labels=list(examples),
                            label="Examples",
                        )
                button.click(_form_handler(endpoint), inputs=inputs, outputs=answer)

        with gr.Tab("Batch", id="batch"):
            gr.Markdown(
                "Upload a CSV with one column per model input (a header line first). "
                f"Rows are scored {settings.batch_size} at a time; bad rows are listed "
                "by line number and the others are still scored."
            )
            with gr.Row():
                model_choice = gr.Radio(
                    ["fraud", "credit"],
                    value="fraud",
                    label="Model",
                    elem_id="batch-model",
                )
                upload = gr.File(
                    label="CSV file", file_types=[".csv"], elem_id="batch-upload"
                )
            run = gr.Button("Score file", variant="primary", elem_id="batch-score")
            summary = gr.HTML(elem_id="batch-summary")
            histogram = gr.HTML(elem_id="batch-histogram")
            download = gr.DownloadButton(
                "Download scored CSV", visible=False, elem_id="batch-download"
            )

            def score_file(kind: str, path: str | None, progress=gr.Progress()):  # noqa: B008
                hidden = gr.DownloadButton(visible=False)
                if not path:
                    return error_html("Choose a CSV file first."), "", hidden
                endpoint = endpoints[kind]

                def report(done: int, total: int) -> None:
                    progress((done, total), desc="scoring rows", unit="rows")

                try:
                    outcome = score_csv(
                        endpoint.client,
                        endpoint.fields,
                        Path(path),
                        scored_files.new_folder(),
                        settings.batch_size,
                        settings.max_upload_rows,
                        report,
                    )
                except (BatchError, EndpointError) as exc:
                    return error_html(str(exc)), "", hidden
                except Exception as exc:
                    log.exception("scoring a %s file failed", kind)
                    return error_html(UNEXPECTED.format(type(exc).__name__)), "", hidden
                chart = histogram_html(
                    f"{outcome.score_name or 'score'} of the scored rows",
                    PROBABILITY_EDGES,
                    {kind: histogram_counts(outcome.scores, PROBABILITY_EDGES)},
                )
                return (
                    batch_summary_html(kind, outcome),
                    chart,
                    gr.DownloadButton(value=str(outcome.output_path), visible=True),
                )

            run.click(
                score_file,
                inputs=[model_choice, upload],
                outputs=[summary, histogram, download],
            )

        with gr.Tab("Rollout", id="rollout"):
            gr.Markdown(
                "Live share of requests per revision and their score distributions, "
                "from the local platform gateway"
                + (f" at {settings.gateway_url}." if settings.gateway_url else ".")
            )
            panel = gr.HTML(elem_id="rollout-panel")
            previous = gr.State(None)
            refresh = gr.Button("Refresh", elem_id="rollout-refresh")

            def refresh_panel(last: Traffic | None) -> tuple[str, Traffic | None]:
                try:
                    return rollout_html(settings.traffic_url, api_key, last)
                except Exception as exc:
                    log.exception("refreshing the rollout panel failed")
                    return error_html(UNEXPECTED.format(type(exc).__name__)), last

            refresh.click(refresh_panel, inputs=previous, outputs=[panel, previous])
            demo.load(refresh_panel, inputs=previous, outputs=[panel, previous])
            if settings.traffic_url and settings.rollout_refresh_seconds > 0:
                timer = gr.Timer(settings.rollout_refresh_seconds)
                timer.tick(refresh_panel, inputs=previous, outputs=[panel, previous])

        with gr.Tab("Experiments", id="experiments"):
            gr.Markdown(
                "An experiment's arms, their shares and outcomes so far, from the "
                "monitor's outcomes report"
                + (
                    f" at {settings.outcomes_report}."
                    if settings.outcomes_report
                    else "."
                )
            )
            experiments = gr.HTML(elem_id="experiments-panel")
            reload = gr.Button("Refresh", elem_id="experiments-refresh")

            def refresh_experiments() -> str:
                try:
                    return experiments_html(settings.outcomes_report)
                except Exception as exc:
                    log.exception("refreshing the experiments panel failed")
                    return error_html(UNEXPECTED.format(type(exc).__name__))

            reload.click(refresh_experiments, outputs=experiments)
            demo.load(refresh_experiments, outputs=experiments)

    demo.queue(default_concurrency_limit=4)
    return demo


def _form_handler(endpoint: ModelEndpoint) -> Callable[..., str]:
    def handler(*values: object) -> str:
        return score_form(endpoint, values)

    return handler
