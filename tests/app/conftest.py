"""Fixtures of the app tests: contract models served by real predictor processes, the
fraud one also behind a real transformer process over the demo's feature repository,
the app as a real process, and headless Chromium (installed from Debian when
missing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from riskserve.app.examples import (
    raw_credit_examples,
    raw_fraud_examples,
    write_examples_file,
)

from riskserve.demo import (
    CardFeatures,
    CustomerFeatures,
    build_card_features,
    build_customer_features,
)
from tests.app.app_processes import (
    APP_API_KEY,
    FRAUD_REVISION,
    AppProcess,
    ensure_chromium,
    start_app,
)
from tests.fixtures.contract_models import (
    credit_model,
    fraud_model,
    scorecard_credit_model,
    write_onnx,
)
from tests.serving.predictor_helpers import Predictor, start_predictor
from tests.transformer.transformer_helpers import (
    TransformerProcess,
    start_transformer,
)


@pytest.fixture(scope="session")
def app_models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("app-models")
    write_onnx(fraud_model(version="3"), root / "fraud")
    write_onnx(credit_model(version="7"), root / "credit")
    return root


@pytest.fixture(scope="session")
def app_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app-logs")


@pytest.fixture(scope="session")
def fraud_predictor(app_models_dir, app_logs) -> Predictor:
    """fraud, auth off, a revision name, at most 64 rows per request."""
    predictor = start_predictor(
        app_logs,
        "app-fraud",
        "fraud",
        app_models_dir / "fraud",
        env={
            "RISKSERVE_SERVING_REVISION": FRAUD_REVISION,
            "RISKSERVE_SERVING_MAX_BATCH_SIZE": "64",
        },
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="session")
def credit_predictor(app_models_dir, app_logs) -> Predictor:
    """credit with auth on: the app must send its API key."""
    predictor = start_predictor(
        app_logs,
        "app-credit",
        "credit",
        app_models_dir / "credit",
        env={"RISKSERVE_SERVING_API_KEY": APP_API_KEY},
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="session")
def app_server(fraud_predictor, credit_predictor, app_logs) -> AppProcess:
    app = start_app(
        app_logs,
        {
            "RISKSERVE_APP_FRAUD_URL": fraud_predictor.url,
            "RISKSERVE_APP_CREDIT_URL": credit_predictor.url,
            "RISKSERVE_APP_API_KEY": APP_API_KEY,
            "RISKSERVE_APP_BATCH_SIZE": "4",
        },
    )
    yield app
    app.stop()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return ensure_chromium()


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):
    context = browser.new_context(
        viewport={"width": 1280, "height": 1000}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(app_server.url)
    yield page
    context.close()


@pytest.fixture(scope="session")
def scorecard_model():
    """A fitted scorecard credit model with reason codes and points (ONNX)."""
    proto, _ = scorecard_credit_model()
    return proto


@pytest.fixture(scope="session")
def scorecard_predictor(scorecard_model, app_models_dir, app_logs) -> Predictor:
    """A real predictor serving that scorecard (auth off)."""
    write_onnx(scorecard_model, app_models_dir / "credit-scorecard")
    predictor = start_predictor(
        app_logs, "app-credit-scorecard", "credit", app_models_dir / "credit-scorecard"
    )
    yield predictor
    predictor.stop()


@pytest.fixture(scope="session")
def scorecard_app(scorecard_predictor, app_logs, fraud_predictor) -> AppProcess:
    """The app over a scorecard credit model with reason codes (auth off)."""
    app = start_app(
        app_logs,
        {
            "RISKSERVE_APP_FRAUD_URL": fraud_predictor.url,
            "RISKSERVE_APP_CREDIT_URL": scorecard_predictor.url,
            "RISKSERVE_APP_BATCH_SIZE": "4",
        },
    )
    yield app
    app.stop()


@pytest.fixture
def scorecard_page(browser, scorecard_app):
    context = browser.new_context(
        viewport={"width": 1280, "height": 1400}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(scorecard_app.url)
    yield page
    context.close()


# -- the fraud model behind a transformer (raw transactions) --------------------------


@pytest.fixture(scope="session")
def card_features(tmp_path_factory) -> CardFeatures:
    """The demo's card data, small: its event log, its feature repository seeded as
    the demo seeds it, and the next day's transactions."""
    return build_card_features(
        tmp_path_factory.mktemp("app-cards"), cards=40, days=3, say=lambda _: None
    )


@pytest.fixture(scope="session")
def fraud_transformer(fraud_predictor, card_features, app_logs) -> TransformerProcess:
    """riskserve's transformer in front of the fraud predictor, over that repository."""
    transformer = start_transformer(
        app_logs,
        "app-fraud-transformer",
        "fraud",
        f"127.0.0.1:{fraud_predictor.http_port}",
        card_features.repo,
        timeout=120,
    )
    yield transformer
    transformer.stop()


@pytest.fixture(scope="session")
def raw_examples(card_features) -> dict[str, dict[str, object]]:
    return raw_fraud_examples(card_features.cards, card_features.history)


@pytest.fixture(scope="session")
def raw_app(fraud_transformer, credit_predictor, raw_examples, app_logs) -> AppProcess:
    """The app with fraud behind the transformer and credit a bare predictor, its raw
    examples from the file the demo writes."""
    examples = app_logs / "app-examples.json"
    write_examples_file(examples, {"fraud": raw_examples})
    app = start_app(
        app_logs,
        {
            "RISKSERVE_APP_FRAUD_URL": fraud_transformer.url,
            "RISKSERVE_APP_CREDIT_URL": credit_predictor.url,
            "RISKSERVE_APP_API_KEY": APP_API_KEY,
            "RISKSERVE_APP_EXAMPLES_FILE": str(examples),
        },
    )
    yield app
    app.stop()


@pytest.fixture
def raw_page(browser, raw_app):
    context = browser.new_context(viewport={"width": 1280, "height": 1300})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(raw_app.url)
    yield page
    context.close()


# -- the credit model behind the checkout transformer (raw checkouts) ----------------


@pytest.fixture(scope="session")
def customer_features(tmp_path_factory) -> CustomerFeatures:
    """The demo's BNPL data, small: checkouts and payment events of four months, the
    repository seeded as the demo seeds it, and the next day's checkouts."""
    return build_customer_features(
        tmp_path_factory.mktemp("app-customers"),
        customers=60,
        days=120,
        say=lambda _: None,
    )


@pytest.fixture(scope="session")
def credit_transformer(
    scorecard_predictor, customer_features, app_logs
) -> TransformerProcess:
    """The checkout transformer in front of the scorecard predictor (reason codes),
    over that repository."""
    transformer = start_transformer(
        app_logs,
        "app-credit-transformer",
        "credit",
        f"127.0.0.1:{scorecard_predictor.http_port}",
        customer_features.repo,
        timeout=120,
    )
    yield transformer
    transformer.stop()


@pytest.fixture(scope="session")
def raw_credit_examples_of_demo(customer_features) -> dict[str, dict[str, object]]:
    return raw_credit_examples(customer_features.checkouts)


@pytest.fixture(scope="session")
def raw_credit_app(
    fraud_predictor, credit_transformer, raw_credit_examples_of_demo, app_logs
) -> AppProcess:
    """The app with credit behind the checkout transformer (fraud a bare predictor),
    its credit examples from the file the demo writes."""
    examples = app_logs / "app-credit-examples.json"
    write_examples_file(examples, {"credit": raw_credit_examples_of_demo})
    app = start_app(
        app_logs,
        {
            "RISKSERVE_APP_FRAUD_URL": fraud_predictor.url,
            "RISKSERVE_APP_CREDIT_URL": credit_transformer.url,
            "RISKSERVE_APP_EXAMPLES_FILE": str(examples),
        },
    )
    yield app
    app.stop()


@pytest.fixture
def raw_credit_page(browser, raw_credit_app):
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(raw_credit_app.url)
    yield page
    context.close()
