"""Property-based API test: schemathesis generates requests from the gateway's own OpenAPI document and
sends them over real HTTP. With a token: no 5xx. Without one: every /v1 call is 401 and the paper exchange
receives nothing. Deterministic (hypothesis derandomised, no example database) and bounded."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from tests.gateway.conftest import Harness, auth, make_harness  # noqa: E402

EXAMPLES_PER_MODE = 50


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def _exercise(url: str, headers: dict[str, str], seen: list[tuple[str, int]]) -> None:
    for operation in _operations(url):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_MODE,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(base_url=url, headers=dict(headers), timeout=30)
                seen.append((f"{case.method} {case.path}", response.status_code))
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                )
                if response.status_code >= 400:
                    doc = response.json()
                    assert set(doc) == {"error", "message", "details"} and doc["message"], doc

            try:
                check()
            except Unsatisfiable:
                # Nothing to break in an operation without parameters or body (e.g. /health).
                assert mode == GenerationMode.NEGATIVE, operation.label


@pytest.fixture
def served(sqlite_url: str) -> Any:
    h = make_harness(sqlite_url)
    with h.serve() as url:
        yield h, url
    h.engine.dispose()


def test_schemathesis_with_token_never_answers_5xx(served: tuple[Harness, str]) -> None:
    harness, url = served
    seen: list[tuple[str, int]] = []
    _exercise(url, auth(), seen)
    assert len(seen) >= 500, Counter(op for op, _ in seen)
    statuses = Counter(code for _, code in seen)
    assert statuses[201] > 0 and statuses[422] > 0  # the run reached both acceptance and refusal
    # Every order that reached the venue has a record and a write-ahead submit row.
    submits = {a.client_order_id for a in harness.audit(kind="order.submit")}
    assert harness.paper_orders() == len(submits)


def test_schemathesis_without_token_places_no_order(served: tuple[Harness, str]) -> None:
    harness, url = served
    seen: list[tuple[str, int]] = []
    _exercise(url, {}, seen)
    assert len(seen) >= 500
    for op, code in seen:
        if op.split(" ", 1)[1].startswith("/v1/"):
            assert code == 401, (op, code)
    assert harness.paper_orders() == 0
    assert harness.venue.count("cancel") == 0
    assert harness.rows() == [] and harness.audit() == []
