"""Property-based fuzzing of the running server from its own OpenAPI document (schemathesis).

Schemathesis (its Python API with hypothesis; its pytest fixture loader does not run under
pytest 9) reads `/openapi.json` from a real server on loopback, generates requests that follow
the published wire schema and ones that break it, sends them as msgpack, and checks that none gets
a 5xx, that every status is a documented one and every reply has its documented content type.
Examples are bounded so the run stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

pytest.importorskip(
    "fastapi", reason="the inference server needs the [serve] extra: pip install -e '.[serve]'"
)


schemathesis = pytest.importorskip("schemathesis")

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance  # noqa: E402

from tests import test_server_support as support  # noqa: E402
from tests.test_server import TOKEN, serving  # noqa: E402
from vidihand_ros.wire import CONTENT_TYPE, WireLimits, encode_window  # noqa: E402


def _plain(value: Any) -> Any:
    """Schemathesis' generated value as msgpack types (its `Binary` wraps the bytes of binary fields)."""
    if isinstance(value, str) and hasattr(value, "data") and isinstance(value.data, bytes):
        return value.data
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@schemathesis.serializer(CONTENT_TYPE)
def _msgpack(ctx: Any, value: Any) -> bytes:
    try:
        return bytes(msgpack.packb(_plain(value), use_bin_type=True))
    except (OverflowError, TypeError, ValueError):  # e.g. an integer past 64 bits: send it as text
        return repr(value).encode()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving(token=TOKEN, limits=WireLimits(max_bytes=4 << 20), deadline_s=5.0) as (base, _):
        yield base


OPERATIONS = [
    ("POST", "/v1/windows"),
    ("GET", "/v1/info"),
    ("GET", "/readyz"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_the_schema_allows_or_breaks_gets_a_5xx(url: str, mode: GenerationMode) -> None:
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = {(op.method.upper(), op.path): op for op in (r.ok() for r in api.get_all_operations())}
    assert set(operations) == set(OPERATIONS)  # everything served is documented
    sent: list[int] = []
    for key in OPERATIONS:
        if mode is GenerationMode.NEGATIVE and key[0] == "GET":
            continue  # nothing to break: they take no parameters
        examples = 40 if key[1] == "/v1/windows" else 5

        @given(case=operations[key].as_strategy(mode))
        @settings(
            max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                checks=[not_a_server_error, status_code_conformance, content_type_conformance],
                timeout=30,
            )
            sent.append(response.status_code)

        check()
    assert len(sent) >= 40
    assert any(400 <= status < 500 for status in sent)  # it did reach the checks
    assert all(status < 500 for status in sent)
    with httpx.Client() as client:  # and it still serves
        window = support.jpeg_window(2)
        reply = client.post(
            f"{url}/v1/windows",
            content=encode_window(window, "w"),
            headers={"Authorization": f"Bearer {TOKEN}", "content-type": CONTENT_TYPE},
        )
        assert reply.status_code == 200
