"""Reading and checking applied YAML, in a worker process of its own.

libyaml builds a document in C without letting go of the GIL: a 1 MB document held
the gateway's event loop for a quarter of a second even from a thread. So the gateway
hands the text to one worker process (started on the first apply) and gets back only
what the platform keeps of each document; inference never waits for a parse.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from riskserve.localplatform.isvc_schema import isvc_errors
from riskserve.localplatform.processes import exit_with_parent
from riskserve.localplatform.spec_rules import (
    SpecError,
    annotation_problems,
    env_problems,
    load_yaml_documents,
    storage_problem,
    transformer_problems,
    valid_name,
)
from riskserve.localplatform.state import storage_uri

Checked = list[tuple[str, list[str]]]
"""Each document's name ("?" when it has no valid one) and what is wrong with it."""


class ApplyError(ValueError):
    """A document or a change the platform refuses; nothing was changed."""


def parse_documents(text: str) -> list[dict[str, Any]]:
    """The InferenceServices in a YAML stream (other kinds, e.g. from `helm template`,
    are skipped: the local platform runs InferenceServices). Aliases and deep nesting
    are refused before anything is built."""
    try:
        documents = load_yaml_documents(text)
    except SpecError as exc:
        raise ApplyError(str(exc)) from None
    services = [
        d
        for d in documents
        if isinstance(d, dict) and d.get("kind") == "InferenceService"
    ]
    if not services:
        raise ApplyError("no InferenceService in the given YAML")
    return services


def check_documents(
    documents: list[dict[str, Any]], max_documents: int, roots: list[Path]
) -> Checked:
    """KServe's schema, then the local platform's own rules (spec_rules)."""
    if len(documents) > max_documents:
        raise ApplyError(
            f"{len(documents)} InferenceServices in one apply; the limit is "
            f"{max_documents} (RISKSERVE_MAX_DOCUMENTS_PER_APPLY)"
        )
    results: Checked = []
    seen: set[str] = set()
    for document in documents:
        errors = isvc_errors(document)
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        name = name if isinstance(name, str) and valid_name(name) else "?"
        if not errors:
            spec = document["spec"]
            problem = storage_problem(storage_uri(spec["predictor"]), roots)
            errors = [
                *([problem] if problem else []),
                *env_problems(spec),
                *transformer_problems(spec, name, roots),
                *annotation_problems(document["metadata"].get("annotations")),
            ]
        if name != "?" and name in seen:
            errors.append("appears twice in one apply")
        seen.add(name)
        results.append((name, errors))
    return results


def kept(document: dict[str, Any]) -> dict[str, Any]:
    """What the platform keeps of a valid document: labels and the rest stay behind."""
    metadata = document["metadata"]
    annotations = metadata.get("annotations") or {}
    return {
        "apiVersion": document["apiVersion"],
        "kind": document["kind"],
        "metadata": {
            "name": metadata["name"],
            "annotations": {
                str(k): str(v)
                for k, v in annotations.items()
                if str(k).startswith("riskserve.io/")
            },
        },
        "spec": document["spec"],
    }


def parse_and_check(
    text: str, max_documents: int, roots: list[Path]
) -> tuple[list[dict[str, Any]], Checked]:
    """The worker's job: parse, check, and trim what travels back."""
    documents = parse_documents(text)
    results = check_documents(documents, max_documents, roots)
    if any(errors for _, errors in results):
        return [], results
    return [kept(d) for d in documents], results


class ApplyWorker:
    """One worker process, started on first use and again if it dies."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._one_at_a_time = asyncio.Semaphore(1)

    async def parse_and_check(
        self, text: str, max_documents: int, roots: list[Path]
    ) -> tuple[list[dict[str, Any]], Checked]:
        async with self._one_at_a_time:
            if self._pool is None:
                # The worker dies with the gateway, as the predictors do: a
                # SIGKILLed daemon must leave no process behind.
                self._pool = ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=exit_with_parent,
                    initargs=(os.getpid(),),
                )
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._pool, parse_and_check, text, max_documents, roots
                )
            except BrokenProcessPool:
                self._pool = None
                raise ApplyError(
                    "the YAML parser stopped (out of memory?); nothing was applied"
                ) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
