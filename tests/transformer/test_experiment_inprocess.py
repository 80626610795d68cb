"""Sticky champion/challenger experiments in the transformer, in process (fake store
and predictors, as tests/transformer/test_policy_applied.py): assignment is sticky
and its shares hold, a bad file is refused in one line, a mixed batch is answered row
by row by each arm's predictor and policy, the answer, metadata and inference log
name the arms (REST and gRPC), and a shadow arm is recorded, never returned."""

from __future__ import annotations

import asyncio
import hashlib
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client import REGISTRY
from riskserve.serving.tensors import OutputTensor
from riskserve.transformer.app import AppliedPolicy, TransformerApp
from riskserve.transformer.decisions import CARD
from riskserve.transformer.experiment import (
    Experiment,
    arm_predictor_host,
    entity_point,
    load_experiment,
)
from riskserve.transformer.experiment_schema import ExperimentError
from riskserve.transformer.experiment_shadow import ShadowSender
from riskserve.transformer.inference_log import ExperimentRecord
from riskserve.transformer.predictor_client import (
    PredictorAnswer,
    PredictorError,
    PredictorPool,
)

from tests.asyncio_runner import run as run_async
from tests.transformer.test_grpc_inprocess import (
    Stub,
    grpc_outputs,
    grpc_request,
    over_grpc,
)
from tests.transformer.test_policy_applied import (
    FRAUD_METADATA,
    FRAUD_POLICY,
    NOW_US,
    RecordedLog,
    get,
    make_app,
    outputs,
    post,
)
from tests.transformer.transformer_helpers import (
    REPO_ROOT,
    child_environment,
    raw_request,
)

pytestmark = pytest.mark.inprocess

OWN_HOST = "fraud-predictor.risk:80"
CHALLENGER_HOST = "fraud-challenger-predictor.risk:80"
SHADOW_HOST = "fraud-gbm-predictor.risk:80"
# A challenger policy that blocks from a lower probability than the graph's cut-off.
CHALLENGER_POLICY = """\
name: fraud-challenger
kind: fraud
model: fraud
rules:
  - name: probability_above_0_2
    when: [{field: fraud_probability, ge: 0.2}]
    action: block
    reason: CHALLENGER_CUTOFF
default: {action: allow, reason: BELOW_CHALLENGER_CUTOFF}
"""
EXPERIMENT = """\
name: fraud-cutoff
salt: s1
arms:
  - {name: champion, share: 0.45, policy: champion.yaml}
  - {name: challenger, share: 0.45, predictor: fraud-challenger,
     policy: challenger.yaml}
holdout: {share: 0.10}
"""
SHADOW_ARM = (
    "  - {name: gbm, shadow: true, predictor: fraud-gbm, policy: champion.yaml}\n"
)


def with_arm(line: str) -> str:
    """EXPERIMENT with one more arm (its YAML line)."""
    return EXPERIMENT.replace("holdout:", line + "holdout:")


class ArmPredictor(PredictorPool):
    """One arm's predictor: every row's fraud probability is `probability`, the
    model version names it; records the rows it was sent."""

    def __init__(self, host: str, probability: float, delay: float = 0.0) -> None:
        super().__init__(host, 1.0)
        self.probability = probability
        self.delay = delay
        self.calls: list[tuple[str, list[str], str]] = []

    async def infer(
        self, model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        if self.delay:
            await asyncio.sleep(self.delay)
        rows = len(next(iter(features.values())))
        self.calls.append((model_name, [str(rows)], request_id))
        probability = np.full((rows, 1), self.probability, np.float32)
        return PredictorAnswer(
            f"{model_name}-1",
            [
                OutputTensor("fraud_probability", "FP32", probability),
                OutputTensor("is_fraud", "BOOL", probability >= 0.5),
            ],
        )

    async def get_json(self, target: str) -> tuple[int, object]:
        return 200, {"outputs": FRAUD_METADATA}


def experiment_file(folder: Path, text: str = EXPERIMENT) -> Path:
    (folder / "champion.yaml").write_bytes(FRAUD_POLICY.read_bytes())
    (folder / "challenger.yaml").write_text(CHALLENGER_POLICY)
    path = folder / "experiment.yaml"
    path.write_text(text)
    return path


def bound(
    path: Path, predictors: dict[str, ArmPredictor]
) -> tuple[Experiment, ArmPredictor]:
    """The experiment at `path`, bound and checked as the server does it."""
    experiment = load_experiment(str(path))
    own = predictors[OWN_HOST]
    experiment.bind(CARD, "fraud", own, predictors.__getitem__, None, None)
    run_async(experiment.check(CARD, FRAUD_METADATA, AppliedPolicy))
    return experiment, own


def arm_predictors(delay: float = 0.0) -> dict[str, ArmPredictor]:
    return {
        OWN_HOST: ArmPredictor(OWN_HOST, 0.1),
        CHALLENGER_HOST: ArmPredictor(CHALLENGER_HOST, 0.3),
        SHADOW_HOST: ArmPredictor(SHADOW_HOST, 0.9, delay),
    }


def experiment_app(
    folder: Path, text: str = EXPERIMENT, delay: float = 0.0, max_pending: int = 100
) -> tuple[TransformerApp, dict[str, ArmPredictor], RecordedLog]:
    predictors = arm_predictors(delay)
    experiment, own = bound(experiment_file(folder, text), predictors)
    app, _, log = make_app("fraud", None)
    app.t.predictor = own
    app.t.experiment = experiment
    if experiment.shadows:
        app.t.shadow = ShadowSender(
            "fraud",
            experiment.name,
            experiment.shadows,
            CARD,
            log,  # type: ignore[arg-type]
            max_pending,
        )
    return app, predictors, log


def cards_request(card_ids: list[str]) -> dict:
    """One request of a transaction of each card."""
    request = raw_request(card_ids[0], NOW_US)
    for item in request["inputs"]:
        item["shape"] = [len(card_ids)]
        if item["name"] == "card_id":
            item["data"] = card_ids
        elif item["name"] == "timestamp":
            item["data"] = [NOW_US + i for i in range(len(card_ids))]
        else:
            item["data"] = item["data"] * len(card_ids)
    return request


def arm_of(experiment: Experiment, card_id: str) -> str:
    return str(experiment.assign([SimpleNamespace(card_id=card_id)]).arm_names[0])


# -- assignment ------------------------------------------------------------------------


def test_the_same_card_lands_in_the_same_arm_every_time(tmp_path: Path) -> None:
    app, _, _ = experiment_app(tmp_path)
    arms = {
        outputs(post(app, "fraud", cards_request(["card-77"])))["arm"][0]
        for _ in range(100)
    }
    assert len(arms) == 1
    # Another experiment object from the same file (a restart) agrees.
    again, _ = bound(tmp_path / "experiment.yaml", arm_predictors())
    assert arms == {arm_of(again, "card-77")}


def test_another_process_computes_the_same_points() -> None:
    """blake2b of salt:id, never Python's hash(): a child with another hash seed
    finds the same points."""
    ids = [f"customer-{i}" for i in range(50)]
    code = (
        "from riskserve.transformer.experiment import entity_point;"
        f"print([entity_point('s1', i) for i in {ids!r}])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**child_environment(), "PYTHONHASHSEED": "12345"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert orjson.loads(done.stdout) == [entity_point("s1", i) for i in ids]


def test_the_batch_points_are_the_documented_formula(tmp_path: Path) -> None:
    experiment, _ = bound(experiment_file(tmp_path), arm_predictors())
    ids = [f"card-{i}" for i in range(1000)] + ["", "é-ü", "x" * 300]
    expected = [
        (
            int.from_bytes(
                hashlib.blake2b(f"s1:{i}".encode(), digest_size=8).digest(), "big"
            )
            >> 11
        )
        / 2**53
        for i in ids
    ]
    assert experiment.points(ids).tolist() == expected
    assert [entity_point("s1", i) for i in ids] == expected
    # a one-row request's arm is the arm that row gets in a batch
    events = [SimpleNamespace(card_id=i) for i in ids]
    batch = experiment.assign(events).arm_names.tolist()
    assert [arm_of(experiment, i) for i in ids] == batch


def test_shares_over_10000_cards_match_the_file_within_sampling_error(
    tmp_path: Path,
) -> None:
    experiment, _ = bound(experiment_file(tmp_path), arm_predictors())
    n = 10_000
    events = [SimpleNamespace(card_id=f"card-{i}") for i in range(n)]
    names = experiment.assign(events).arm_names.tolist()
    for arm, share in (("champion", 0.45), ("challenger", 0.45), ("holdout", 0.10)):
        count = names.count(arm)
        # binomial: 5 standard deviations either side of the expected count
        bound_ = 5 * math.sqrt(n * share * (1 - share))
        assert abs(count - n * share) <= bound_, (arm, count)
    assert len(set(names)) == 3


def test_a_new_salt_reassigns_about_as_many_cards_as_chance_would(
    tmp_path: Path,
) -> None:
    first, _ = bound(experiment_file(tmp_path), arm_predictors())
    (tmp_path / "other").mkdir()
    other = experiment_file(tmp_path / "other", EXPERIMENT.replace("s1", "s2"))
    second, _ = bound(other, arm_predictors())
    events = [SimpleNamespace(card_id=f"card-{i}") for i in range(4000)]
    same = np.mean(first.assign(events).arm_names == second.assign(events).arm_names)
    # independent assignments agree with probability 0.45^2 + 0.45^2 + 0.1^2 = 0.415
    assert 0.37 < same < 0.46


# -- the file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            EXPERIMENT.replace("share: 0.45, predictor", "share: 0.55, predictor"),
            "arms: the live arms' shares and the holdout sum to 1.1, not 1",
        ),
        (
            EXPERIMENT.replace("share: 0.45, predictor", "share: -1, predictor"),
            "arms[1].share: Input should be greater than 0",
        ),
        (
            EXPERIMENT.replace("salt: s1\n", ""),
            "salt: is required",
        ),
        (
            with_arm("  - {name: gbm, shadow: true, share: 0.1}\n"),
            "arms[2].share: a shadow arm gets no share (it answers no one)",
        ),
        (
            EXPERIMENT.replace("name: challenger", "name: champion"),
            "arms[1].name: 'champion' is used twice",
        ),
        (
            EXPERIMENT.replace(
                "holdout: {share: 0.10}", "holdout: {share: 0.1, arm: x}"
            ),
            "holdout.arm: 'x' is not a live arm of this experiment",
        ),
        (
            EXPERIMENT.replace("predictor: fraud-challenger", "predictor: Fraud_2"),
            "arms[1].predictor: String should match pattern",
        ),
        (
            EXPERIMENT.replace("challenger.yaml", "missing.yaml"),
            "arms[1].policy: ",
        ),
        (EXPERIMENT + "colour: blue\n", "colour: is not a field of an experiment"),
        (
            EXPERIMENT + "champion: gbm\n",
            "champion: 'gbm' is not a live arm of this experiment",
        ),
        (
            EXPERIMENT + "economics: {gain_rate: 0.04}\n",
            "economics.loss_given_default: is required",
        ),
        ("arms: [1, 2\n", "not YAML"),
    ],
)
def test_a_bad_file_is_refused_with_one_line_naming_the_place(
    tmp_path: Path, text: str, line: str
) -> None:
    with pytest.raises(ExperimentError) as refused:
        load_experiment(str(experiment_file(tmp_path, text)))
    message = str(refused.value)
    assert len(message.splitlines()) == 1, message
    assert line in message


def test_the_holdout_is_answered_as_the_champion_and_the_monitors_keys_pass(
    tmp_path: Path,
) -> None:
    text = EXPERIMENT + (
        "champion: challenger\neconomics: {gain_rate: 0.04, loss_given_default: 0.9}\n"
    )
    experiment, _ = bound(experiment_file(tmp_path, text), arm_predictors())
    assert experiment.slots[-1][0] == "holdout"
    assert experiment.slots[-1][1].name == "challenger"
    assert experiment.describe()["champion"] == "challenger"


def test_an_arm_without_a_policy_beside_arms_with_one_is_refused(
    tmp_path: Path,
) -> None:
    text = EXPERIMENT.replace(", policy: champion.yaml", "")
    experiment = load_experiment(str(experiment_file(tmp_path, text)))
    predictors = arm_predictors()
    with pytest.raises(ExperimentError, match=r"arms\[0\]\.policy: arms 'challenger'"):
        experiment.bind(
            CARD, "fraud", predictors[OWN_HOST], predictors.__getitem__, None, None
        )


def test_an_arm_predictor_answering_other_outputs_is_refused(tmp_path: Path) -> None:
    predictors = arm_predictors()

    async def other(target: str) -> tuple[int, object]:
        return 200, {"outputs": [FRAUD_METADATA[0]]}

    predictors[CHALLENGER_HOST].get_json = other  # type: ignore[method-assign]
    experiment = load_experiment(str(experiment_file(tmp_path)))
    experiment.bind(
        CARD, "fraud", predictors[OWN_HOST], predictors.__getitem__, None, None
    )
    with pytest.raises(ExperimentError, match=r"arms\[1\]\.predictor: fraud-chall"):
        run_async(experiment.check(CARD, FRAUD_METADATA, AppliedPolicy))
    assert not experiment.checked


def test_a_missing_arm_predictor_keeps_the_experiment_unchecked_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    predictors = arm_predictors()

    async def missing(target: str) -> tuple[int, object]:
        return 404, {"error": "unknown InferenceService"}

    predictors[CHALLENGER_HOST].get_json = missing  # type: ignore[method-assign]
    experiment = load_experiment(str(experiment_file(tmp_path)))
    experiment.bind(
        CARD, "fraud", predictors[OWN_HOST], predictors.__getitem__, None, None
    )

    async def go() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                experiment.check(CARD, FRAUD_METADATA, AppliedPolicy), 1.5
            )

    run_async(go())
    assert not experiment.checked
    (line,) = [r for r in caplog.records if "arm's predictor" in r.getMessage()]
    assert (line.arm, line.predictor, line.status) == (  # type: ignore[attr-defined]
        "challenger",
        "fraud-challenger",
        404,
    )


def start_refused(env: dict[str, str], *args: str) -> list[str]:
    """The transformer started with `env` and `args`, refused: its stderr lines."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "riskserve.transformer",
            "--model_name",
            "fraud",
            "--predictor_host",
            "127.0.0.1:9",
            *args,
        ],
        env={**child_environment(), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    return done.stderr.strip().splitlines()


def test_a_bad_file_stops_the_process_with_one_line(tmp_path: Path) -> None:
    path = experiment_file(tmp_path, EXPERIMENT.replace("0.10", "0.2"))
    lines = start_refused(
        {
            "RISKSERVE_TRANSFORMER_EXPERIMENT_URI": str(path),
            "RISKSERVE_TRANSFORMER_FEATURE_REPO": str(tmp_path),
        }
    )
    assert lines == [
        "riskserve.transformer: RISKSERVE_TRANSFORMER_EXPERIMENT_URI: arms: the "
        "live arms' shares and the holdout sum to 1.1, not 1"
    ]


def test_the_arm_predictor_on_a_cluster_is_its_isvcs_predictor_service() -> None:
    assert (
        arm_predictor_host("fraud-predictor.risk", "fraud", "fraud-b")
        == "fraud-b-predictor.risk"
    )
    assert (
        arm_predictor_host("fraud-predictor-default.risk.svc:80", "fraud", "fraud-b")
        == "fraud-b-predictor-default.risk.svc:80"
    )
    # one machine: the platform's predictor listener routes by the path's name
    assert arm_predictor_host("127.0.0.1:5123", "fraud", "fraud-b") == "127.0.0.1:5123"


# -- routing ---------------------------------------------------------------------------


def test_a_mixed_batch_is_answered_row_by_row_by_each_arms_predictor_and_policy(
    tmp_path: Path,
) -> None:
    app, predictors, log = experiment_app(tmp_path)
    cards = [f"card-{i}" for i in range(40)]
    expected = [arm_of(app.t.experiment, c) for c in cards]  # type: ignore[arg-type]
    assert {"champion", "challenger", "holdout"} <= set(expected)
    got = outputs(post(app, "fraud", cards_request(cards)))
    assert got["arm"] == expected
    assert got["experiment"] == ["fraud-cutoff"] * len(cards)
    for arm, probability, action in zip(
        got["arm"], got["fraud_probability"], got["action"], strict=True
    ):
        if arm == "challenger":  # its predictor (0.3) and its policy (block >= 0.2)
            assert probability == pytest.approx([0.3])
            assert action == "block"
        else:  # champion and holdout: the own predictor (0.1), the starter policy
            assert probability == pytest.approx([0.1])
            assert action == "allow"
    challengers = expected.count("challenger")
    assert predictors[CHALLENGER_HOST].calls == [
        (
            "fraud-challenger",
            [str(challengers)],
            predictors[CHALLENGER_HOST].calls[0][2],
        )
    ]
    assert predictors[OWN_HOST].calls[0][:2] == ("fraud", [str(40 - challengers)])
    (record,) = log.records
    line = orjson.loads(record.to_json())
    assert line["experiment"] == "fraud-cutoff"
    assert line["arms"] == expected
    assert line["arm"] is None and line["shadow"] is False
    assert line["outputs"]["action"] == got["action"]
    assert line["model_version"] == "fraud-1,fraud-challenger-1"


def test_a_failed_arm_predictor_fails_the_request_and_records_nothing(
    tmp_path: Path,
) -> None:
    app, predictors, log = experiment_app(tmp_path)

    async def timed_out(
        model_name: str, features: dict[str, np.ndarray], request_id: str
    ) -> PredictorAnswer:
        raise PredictorError("the predictor did not answer within 1000 ms", 504)

    predictors[CHALLENGER_HOST].infer = timed_out  # type: ignore[method-assign]
    cards = [f"card-{i}" for i in range(40)]
    answer = post(app, "fraud", cards_request(cards))
    assert answer.status_code == 504
    assert "did not answer" in answer.json()["error"]
    assert log.records == []  # no decision was answered, none is recorded


def test_one_card_request_records_its_arm(tmp_path: Path) -> None:
    app, _, log = experiment_app(tmp_path)
    card = next(
        c
        for c in (f"card-{i}" for i in range(100))
        if arm_of(app.t.experiment, c) == "challenger"
    )  # type: ignore[arg-type]
    got = outputs(post(app, "fraud", cards_request([card])))
    assert got["arm"] == ["challenger"] and got["action"] == ["block"]
    line = orjson.loads(log.records[0].to_json())
    assert (line["arm"], line["arms"]) == ("challenger", ["challenger"])


def test_the_metadata_lists_the_experiments_outputs_and_arms(tmp_path: Path) -> None:
    app, _, _ = experiment_app(tmp_path)
    metadata = get(app, "/v2/models/fraud").json()
    names = [o["name"] for o in metadata["outputs"]]
    assert {"experiment", "arm", "action", "policy_version"} <= set(names)
    described = metadata["parameters"]["experiment"]
    assert described["name"] == "fraud-cutoff"
    assert described["entity"] == "card_id"
    assert [(a["name"], a["predictor"]) for a in described["arms"]] == [
        ("champion", "fraud"),
        ("challenger", "fraud-challenger"),
    ]
    assert described["holdout"] == {"share": 0.1, "arm": "champion"}


def test_without_an_experiment_nothing_changes() -> None:
    app, predictor, log = make_app("fraud", None)
    predictor.decisions = [False]
    got = outputs(post(app, "fraud", cards_request(["card-1"])))
    assert "arm" not in got and "experiment" not in got
    assert "experiment" not in orjson.loads(log.records[0].to_json())
    names = [o["name"] for o in get(app, "/v2/models/fraud").json()["outputs"]]
    assert "arm" not in names


def test_over_grpc_the_answer_names_the_arm_too(tmp_path: Path) -> None:
    app, _, log = experiment_app(tmp_path)
    cards = [f"card-{i}" for i in range(10)]
    expected = [arm_of(app.t.experiment, c).encode() for c in cards]  # type: ignore[arg-type]

    async def talk(stub: Stub) -> Any:
        return await stub.ModelInfer(grpc_request(cards_request(cards)))

    got = grpc_outputs(over_grpc(app.t, talk))
    assert got["arm"] == expected
    assert orjson.loads(log.records[0].to_json())["arms"] == [
        a.decode() for a in expected
    ]


# -- shadow arms -----------------------------------------------------------------------


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_shadow_arm_is_recorded_after_the_answer_and_never_returned(
    tmp_path: Path,
) -> None:
    app, predictors, log = experiment_app(tmp_path, with_arm(SHADOW_ARM), delay=0.3)
    assert app.t.shadow is not None
    shadow = app.t.shadow

    async def go() -> tuple[httpx.Response, int]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://transformer"
        ) as client:
            answer = await client.post(
                "/v2/models/fraud/infer",
                content=orjson.dumps(cards_request(["card-1", "card-2"])),
            )
        recorded_at_answer = len(log.records)
        await asyncio.wait_for(shadow.queue.join(), 10)
        return answer, recorded_at_answer

    before = _sample("riskserve_transformer_shadow_decisions_total", arm="gbm")
    answer, recorded_at_answer = run_async(go())
    got = outputs(answer)
    # the answer: the live arms only (the shadow's 0.9 and its block never appear)
    assert all(p < 0.5 for (p,) in got["fraud_probability"])
    assert "gbm" not in got["arm"]
    assert recorded_at_answer == 1  # the answer's record; the shadow's not yet
    answered, shadowed = (orjson.loads(r.to_json()) for r in log.records)
    assert isinstance(log.records[1], ExperimentRecord)
    assert shadowed["request_id"] == answered["request_id"]
    assert (shadowed["shadow"], answered["shadow"]) == (True, False)
    assert shadowed["arms"] == ["gbm", "gbm"] and shadowed["arm"] == "gbm"
    assert shadowed["outputs"]["action"] == ["block", "block"]
    assert shadowed["outputs"]["fraud_probability"] == pytest.approx([0.9, 0.9])
    assert shadowed["inputs"] == answered["inputs"]
    assert predictors[SHADOW_HOST].calls[0][0] == "fraud-gbm"
    after = _sample("riskserve_transformer_shadow_decisions_total", arm="gbm")
    assert after - before == 2


def test_a_full_shadow_queue_drops_copies_and_counts_them(tmp_path: Path) -> None:
    app, _, log = experiment_app(
        tmp_path, with_arm(SHADOW_ARM), delay=0.2, max_pending=1
    )
    assert app.t.shadow is not None
    shadow = app.t.shadow
    before = _sample("riskserve_transformer_shadow_dropped_total")

    async def go() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://transformer"
        ) as client:
            for i in range(4):
                answer = await client.post(
                    "/v2/models/fraud/infer",
                    content=orjson.dumps(cards_request([f"card-{i}"])),
                )
                assert answer.status_code == 200
        await asyncio.wait_for(shadow.queue.join(), 10)

    run_async(go())
    dropped = _sample("riskserve_transformer_shadow_dropped_total") - before
    shadows = [r for r in log.records if orjson.loads(r.to_json())["shadow"]]
    # one copy in the queue at most: while the slow shadow decides one, the next
    # waits and any further one is dropped; every copy is decided or counted
    assert dropped >= 1 and len(shadows) >= 1
    assert dropped + len(shadows) == 4


def test_an_experiment_on_a_policy_only_transformer_is_refused(
    tmp_path: Path,
) -> None:
    lines = start_refused(
        {
            "RISKSERVE_TRANSFORMER_EXPERIMENT_URI": str(experiment_file(tmp_path)),
            "RISKSERVE_TRANSFORMER_POLICY_URI": str(FRAUD_POLICY),
        },
        "--features",
        "none",
    )
    assert lines == [
        "riskserve.transformer: RISKSERVE_TRANSFORMER_EXPERIMENT_URI: a policy-only "
        "transformer (--features none) has no entity id to assign arms by"
    ]


def test_an_experiment_with_a_shadow_and_no_inference_log_is_refused(
    tmp_path: Path,
) -> None:
    (line,) = start_refused(
        {
            "RISKSERVE_TRANSFORMER_EXPERIMENT_URI": str(
                experiment_file(tmp_path, with_arm(SHADOW_ARM))
            ),
            "RISKSERVE_TRANSFORMER_FEATURE_REPO": str(tmp_path),
        }
    )
    assert "set RISKSERVE_TRANSFORMER_INFERENCE_LOG_URI" in line
