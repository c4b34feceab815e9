"""Our API against its own OpenAPI description, by property-based testing (schemathesis).

The App runs in process on a loopback port with a few proposals (public and private);
schemathesis reads `/api/openapi.json` from it and sends each operation generated
requests, valid and invalid. No answer may be a server error, and every answer must
match the description: status, content type, headers and body schema.
"""

from __future__ import annotations

import asyncio

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tests.harness import app_under_test
from tests.proposal_world import DOCS, SHOP, VAULT, World, recent_clock, seed_world

EXAMPLES_PER_OPERATION = 50


@pytest.fixture
async def world(tmp_path, fake_github, app_private_key):
    seed_world(fake_github)
    # Far more requests than the limit allows would make every late answer a 429.
    async with app_under_test(
        tmp_path,
        github_url=fake_github.url,
        private_key=app_private_key,
        clock=recent_clock(),
        RATE_LIMIT_MAX_REQUESTS="100000",
    ) as app:
        world = World(app, fake_github)
        await world.open(SHOP, 1)
        await world.open(VAULT, 2)
        await world.open(DOCS, 3)
        await world.say(SHOP, 1, ("/approve <b>bold</b> & more", "ann"), ("/approve", "max"), ("/approve", "dan"))
        await world.say(SHOP, 1, ("/promote", "ann"))
        app.runtime.start_worker()  # so that health answers 200, as in production
        yield world


def fuzz(base_url: str) -> list[str]:
    """Every operation with generated requests; the failures, one line each (empty when none)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in GenerationMode:

                @hypothesis.settings(
                    max_examples=EXAMPLES_PER_OPERATION // 2,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck),
                )
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def check(case):
                    case.call_and_validate(base_url=base_url, session=session)

                try:
                    check()
                except hypothesis.errors.Unsatisfiable:
                    # An operation that takes no input has no invalid requests to send.
                    if mode is GenerationMode.POSITIVE:
                        raise
                except (AssertionError, FailureGroup) as failure:  # an operation's first failure; then the next
                    failures.append(f"{operation.label} ({mode.value}): {failure}")
    return failures


async def test_every_operation_answers_as_its_description_says(world):
    base_url = str(world.app.client.make_url("")).rstrip("/")
    # schemathesis is synchronous: it runs in a thread while this loop serves the App.
    failures = await asyncio.to_thread(fuzz, base_url)
    assert failures == [], "\n\n".join(failures)


async def test_deployment_status_answers_ids_beyond_64_bits_without_a_server_error(tmp_path, fake_github, app_private_key):
    async with app_under_test(tmp_path, github_url=fake_github.url, private_key=app_private_key) as app:
        for raw in (str(2**63), str(-(2**63) - 1), "9" * 30):
            response = await app.client.get("/api/deployments/status", params={"deploymentId": raw})
            assert response.status in (400, 404), f"{raw}: {response.status}"
