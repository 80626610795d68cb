"""Running the transformer: the REST app on uvicorn inside the predictor's HTTP limits
(and the v2 gRPC server beside it, unless `--enable_grpc false`),
the feature store opened in the background (ready once it is), pushes drained at
shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from riskserve.features.pending_states import pending_states
from riskserve.serving.browser_guard import BrowserGuard
from riskserve.serving.http_limits import (
    ConcurrencyLimit,
    HttpTimeouts,
    timeout_protocol,
)
from riskserve.serving.memory import freeze_startup_heap
from riskserve.transformer import metrics
from riskserve.transformer.app import (
    AppliedPolicy,
    Transformer,
    TransformerApp,
    fetch_predictor_outputs,
)
from riskserve.transformer.decisions import decision_for
from riskserve.transformer.experiment import Experiment
from riskserve.transformer.experiment_schema import ExperimentError
from riskserve.transformer.experiment_shadow import ShadowSender
from riskserve.transformer.features_source import (
    FeatureSource,
    PushHooks,
    PushWorker,
    open_feature_store,
)
from riskserve.transformer.inference_log import open_inference_log
from riskserve.transformer.policy import Policy, PolicyError
from riskserve.transformer.policy_only import PolicyOnlyDecision
from riskserve.transformer.predictor_client import PredictorPool
from riskserve.transformer.settings import TransformerSettings

if TYPE_CHECKING:
    import grpc

log = logging.getLogger("transformer")


@dataclass(frozen=True)
class ServerOptions:
    """What the command line decides (KServe's arguments and the feature repo)."""

    model_name: str
    predictor_host: str
    http_port: int
    feature_repo: Path | None  # None: policy only (`--features none`)
    predictor_timeout_seconds: float
    check_predictor_health: bool = False
    timeout_keep_alive: int = 65
    log_config_file: str | None = None
    grpc_port: int | None = None  # None: no gRPC server (--enable_grpc false)
    grpc_max_message_bytes: int = 4 * 1024 * 1024


def _pushed(seconds: float) -> None:
    metrics.PUSHES.inc()
    metrics.STAGE.labels("push").observe(seconds)


PUSH_HOOKS = PushHooks(
    pushed=_pushed,
    failed=lambda reason: metrics.PUSH_FAILURES.labels(reason).inc(),
    pending=lambda size: metrics.PUSHES_PENDING.set(size),
)


class TransformerServer:
    def __init__(
        self,
        options: ServerOptions,
        settings: TransformerSettings,
        policy: Policy | None = None,
        experiment: Experiment | None = None,
    ) -> None:
        self.options = options
        self.settings = settings
        self.exit_code = 0
        self.transformer = Transformer(
            model_name=options.model_name,
            predictor=PredictorPool(
                options.predictor_host,
                options.predictor_timeout_seconds,
                settings.predictor_api_key.get_secret_value()
                if settings.predictor_api_key
                else None,
            ),
            source=None,
            pushes=None,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            fail_open=settings.fail_open,
            max_batch_size=settings.max_batch_size,
            max_body_bytes=settings.max_body_bytes,
            check_predictor_health=options.check_predictor_health,
            decision=decision_for(options.model_name, settings.kind)
            if options.feature_repo is not None
            else PolicyOnlyDecision(options.model_name, settings.kind),
            features=options.feature_repo is not None,
            policy=AppliedPolicy(policy, settings.policy_uri or "")
            if policy is not None
            else None,
        )
        if experiment is not None:
            own = self.transformer.predictor
            experiment.bind(
                self.transformer.decision,
                options.model_name,
                own,
                lambda host: PredictorPool(host, own.timeout, own.api_key),
                policy,
                settings.policy_uri,
            )
            self.transformer.experiment = experiment
        self.http = uvicorn.Server(self._http_config())
        self.grpc: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _http_config(self) -> uvicorn.Config:
        settings = self.settings
        extra = (
            [(b"x-riskserve-revision", settings.revision.encode())]
            if settings.revision
            else []
        )
        app = ConcurrencyLimit(
            # A web page cannot score, nor move a card's or customer's state.
            BrowserGuard(
                TransformerApp(self.transformer, settings.revision),
                on_refuse=metrics.HTTP_BROWSER_REFUSED.inc,
                headers=extra,
            ),
            max_requests=settings.max_concurrent_requests,
            max_body_bytes=settings.max_in_flight_body_bytes,
            retry_after_seconds=settings.retry_after_seconds,
            on_reject=lambda limit: metrics.HTTP_REJECTED.labels(limit).inc(),
            headers=extra,
        )
        timeouts = HttpTimeouts(
            header_seconds=settings.http_header_timeout_seconds,
            body_seconds=settings.http_body_timeout_seconds,
            on_timeout=lambda phase: metrics.HTTP_TIMEOUTS.labels(phase).inc(),
        )
        return uvicorn.Config(
            app,
            host=settings.host,
            port=self.options.http_port,
            loop="none",
            # The answer is complete when it is sent: head and body in one write.
            http=timeout_protocol(timeouts, one_write=True),
            lifespan="off",
            access_log=False,
            log_config=self.options.log_config_file,
            timeout_keep_alive=self.options.timeout_keep_alive,
            server_header=False,
        )

    async def _open_store(self) -> None:
        settings, repo = self.settings, self.options.feature_repo
        assert repo is not None  # started only with features
        try:
            store = await asyncio.to_thread(
                open_feature_store, repo, settings.online_store_path, settings.redis
            )
            # The registry read and the first connection, before readiness says yes.
            await asyncio.to_thread(store.list_feature_views)
            decision = self.transformer.decision
            push = await asyncio.to_thread(decision.pusher, store)
            lookup_one = await asyncio.to_thread(
                decision.lookup_one, store, settings.lookup_path == "direct"
            )
        except Exception as exc:
            log.error(
                "cannot open the feature store",
                extra={
                    "feature_repo": str(repo),
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            self.exit_code = 1
            self.http.should_exit = True
            return
        threads = settings.store_io == "thread"
        if threads:
            # A thread that wants the GIL waits up to the switch interval (5 ms by
            # default) for the one holding it: with lookups and writes on threads
            # beside the loop that wait lands in the requests' latency.
            sys.setswitchinterval(0.0005)
        # The pushes of one loop pass (or one drain of the push thread) commit
        # together; until then lookups read the staged states (pending_states).
        pending = pending_states(store)
        pending.batching = True
        self.transformer.pushes = PushWorker(
            push,
            settings.max_pending_pushes,
            PUSH_HOOKS,
            in_thread=threads,
            flush=pending.flush,
        )
        self.transformer.source = FeatureSource(
            store,
            settings.lookup_timeout_seconds,
            in_thread=threads,
            lookup_one=lookup_one,
        )
        log.info(
            "serving",
            extra={
                "model_name": self.options.model_name,
                "decision": self.transformer.decision.kind,
                "predictor_host": self.options.predictor_host,
                "http_port": self.options.http_port,
                "grpc_port": self.options.grpc_port,
                "feature_repo": str(repo),
                "fail_open": settings.fail_open,
                "store_io": settings.store_io,
                "lookup_path": settings.lookup_path,
                "auth": self.transformer.api_key is not None,
                "inference_log": settings.inference_log_uri,
                "policy_uri": settings.policy_uri,
                # What opening the store built (Feast, pandas, protobuf) lives as
                # long as the process: out of the full collections (memory.py).
                "frozen_objects": freeze_startup_heap(),
            },
        )

    async def _predictor_metadata(self) -> None:
        """The predictor's outputs, then the policy checked against the model: not
        ready until it is; a policy naming a field the model lacks stops the process
        with one log line (exit code 2), as a policy that does not parse does."""
        policy = self.transformer.policy
        if policy is not None:
            log.info(
                "the policy is checked once the predictor's metadata is known; "
                "not ready until then",
                extra={"policy": policy.policy.name, "policy_uri": policy.uri},
            )
        await fetch_predictor_outputs(self.transformer)
        if self.transformer.experiment is not None:
            await self._check_experiment(self.transformer.experiment)
        if policy is None:
            return
        try:
            decision = self.transformer.decision
            if isinstance(decision, PolicyOnlyDecision):
                # policy only: the model's inputs are the raw inputs
                decision.take_inputs(self.transformer.predictor_inputs)
                log.info(
                    "serving, policy only: the request holds the model's inputs",
                    extra={
                        "model_name": self.options.model_name,
                        "inputs": [n for n, _, _ in decision.raw_inputs],
                        "predictor_host": self.options.predictor_host,
                    },
                )
            policy.check(
                self.options.model_name,
                self.transformer.decision,
                self.transformer.predictor_outputs,
            )
        except (PolicyError, ValueError) as exc:
            log.error(
                "the policy does not fit the model",
                extra={
                    "policy_uri": policy.uri,
                    "error": "; ".join(str(exc).splitlines()),
                },
            )
            self.exit_code = 2
            self.http.should_exit = True
            return
        log.info(
            "policy checked",
            extra={
                "policy": policy.policy.name,
                "policy_version": policy.policy.version,
                "policy_uri": policy.uri,
            },
        )

    async def _check_experiment(self, experiment: Experiment) -> None:
        """Each arm's predictor and policy against the model, once they answer: not
        ready until then; an arm that does not fit stops the process with one log
        line (exit code 2), as a policy that does not fit does."""
        log.info(
            "the experiment is checked once its arms' predictors answer; not ready "
            "until then",
            extra={"experiment": experiment.name, "experiment_uri": experiment.uri},
        )
        try:
            await experiment.check(
                self.transformer.decision,
                self.transformer.predictor_outputs,
                AppliedPolicy,
            )
        except ExperimentError as exc:
            log.error(
                "the experiment does not fit the model",
                extra={
                    "experiment_uri": experiment.uri,
                    "error": "; ".join(str(exc).splitlines()),
                },
            )
            self.exit_code = 2
            self.http.should_exit = True
            return
        log.info("experiment checked", extra={"experiment": experiment.describe()})

    async def serve(self) -> int:
        # Started first: it publishes what a killed predecessor left in the spool.
        self.transformer.inference_log = open_inference_log(self.settings)
        experiment = self.transformer.experiment
        if experiment is not None and experiment.shadows:
            assert self.transformer.inference_log is not None  # __main__ checked
            self.transformer.shadow = ShadowSender(
                self.options.model_name,
                experiment.name,
                experiment.shadows,
                self.transformer.decision,
                self.transformer.inference_log,
                self.settings.experiment_shadow_max_pending,
            )
        if self.settings.predictor_routes_file is not None:
            self.transformer.predictor.route_directly(
                self.settings.predictor_routes_file
            )
        self._tasks = [asyncio.create_task(self._predictor_metadata())]
        if self.options.feature_repo is not None:
            self._tasks.append(asyncio.create_task(self._open_store()))
        for handled in (signal.SIGTERM, signal.SIGINT):
            signal.signal(handled, lambda *_: None)
        try:
            if self.options.grpc_port is not None:
                await self._start_grpc(self.options.grpc_port)
            await self.http.serve()
        finally:
            await self.stop()
        return self.exit_code or (0 if self.http.started else 1)

    async def _start_grpc(self, port: int) -> None:
        """The v2 gRPC server beside REST, on the same loop and transformer."""
        from riskserve.transformer.grpc_server import create_server

        host = self.settings.host
        self.grpc = create_server(
            self.transformer,
            port,
            self.options.grpc_max_message_bytes,
            revision=self.settings.revision,
            host="[::]" if host in ("0.0.0.0", "::") else host,
            max_concurrent_rpcs=self.settings.max_concurrent_rpcs,
        )
        await self.grpc.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.grpc is not None:
            await self.grpc.stop(grace=5)
        if self.transformer.shadow is not None:
            await self.transformer.shadow.drain(self.settings.push_drain_seconds)
        if self.transformer.experiment is not None:
            for pool in self.transformer.experiment.pools():
                if pool is not self.transformer.predictor:
                    pool.close()
        self.transformer.predictor.close()
        if self.transformer.source is not None:
            self.transformer.source.close()
        if self.transformer.pushes is not None:
            await asyncio.to_thread(
                self.transformer.pushes.close, self.settings.push_drain_seconds
            )
        if self.transformer.inference_log is not None:
            await asyncio.to_thread(self.transformer.inference_log.close)
