"""Installations: created, deleted, suspended and unsuspended, and their repositories, are
stored; deliveries for a suspended or deleted installation are acknowledged and not acted on."""

from __future__ import annotations

from sqlalchemy import select

from pinkflow_bot.storage.models import Delivery, Installation, InstallationRepository
from tests import payloads
from tests.flow import (  # noqa: F401  (fixtures)
    REPO,
    SHA,
    app_fixture,
    clock_fixture,
    make_app_fixture,
    open_proposal,
    status,
    vote_fixture,
    world_fixture,
)

TOKENS = "apps/create-installation-access-token"


async def stored(app) -> tuple[Installation | None, dict[str, bool]]:
    async with app.runtime.sessions() as session:
        installation = await session.get(Installation, 1)
        rows = await session.scalars(select(InstallationRepository).where(InstallationRepository.installation_id == 1))
        return installation, {row.repo_full_name: row.removed_at is None for row in rows}


async def delivery_status(app, delivery_id: str) -> str:
    async with app.runtime.sessions() as session:
        return await session.scalar(select(Delivery.status).where(Delivery.delivery_id == delivery_id))


async def test_installations_and_their_repositories_are_stored(app, world):
    await app.deliver(payloads.installation_event("created", installation_id=1, repositories=(REPO, "octo-org/docs")))
    installation, repositories = await stored(app)
    assert installation.account_login == "octo-org" and installation.suspended_at is None
    assert repositories == {REPO: True, "octo-org/docs": True}
    await app.deliver(
        payloads.installation_repositories("added", installation_id=1, repositories=("octo-org/api",)),
        payloads.installation_repositories("removed", installation_id=1, repositories=("octo-org/docs",)),
    )
    assert (await stored(app))[1] == {REPO: True, "octo-org/docs": False, "octo-org/api": True}
    # None of these needed to act as the installation.
    assert world.calls_for(TOKENS) == []


async def test_a_suspended_installation_is_not_acted_on_until_unsuspended(app, world, vote):
    await open_proposal(app)
    world.set_suspended(1, suspended=True)
    await app.deliver(payloads.installation_event("suspend", installation_id=1))
    assert (await stored(app))[0].suspended_at is not None
    ignored = vote("/approve", "ann")
    calls = len(world.calls)
    response = await app.send(ignored)
    assert response.status == 202  # acknowledged
    await app.drain()
    assert len(world.calls) == calls  # nothing was asked of GitHub for it
    assert await delivery_status(app, ignored.delivery_id) == "done"  # handled, not left to fail and retry
    assert (await status(app))["votes"]["total"] == 0
    assert world.reaction_contents(ignored.payload["comment"]["id"]) == []
    world.set_suspended(1, suspended=False)
    await app.deliver(payloads.installation_event("unsuspend", installation_id=1), vote("/approve", "ann"))
    assert (await status(app))["votes"]["total"] == 1


async def test_a_promotion_waiting_when_the_installation_is_suspended_can_be_asked_for_again_after(app, world, vote, clock):
    await open_proposal(app)
    await app.deliver(vote("/approve", "ann"), vote("/approve", "max"), vote("/approve", "dan"))
    world.fail("repos/create-deployment", status=502)  # the promotion waits for its retry
    await app.deliver(vote("/promote", "ann"))
    world.set_suspended(1, suspended=True)
    await app.deliver(payloads.installation_event("suspend", installation_id=1))
    clock.advance(minutes=10)
    await app.drain()  # the retry falls due while suspended: nothing is done, and it is not left pending
    assert (await status(app))["promotion"]["state"] == "failed"

    world.set_suspended(1, suspended=False)
    await app.deliver(payloads.installation_event("unsuspend", installation_id=1), vote("/promote", "ann"))
    assert len(world.deployments_of(REPO)) == 1
    assert (await status(app))["status"] == "promoted"


async def test_a_deleted_installation_is_not_acted_on(app, world):
    await app.deliver(payloads.installation_event("created", installation_id=1, repositories=(REPO,)))
    await app.deliver(payloads.installation_event("deleted", installation_id=1))
    assert (await stored(app))[0].deleted_at is not None
    await app.deliver(payloads.preview_ready(repo=REPO, sha=SHA, deployment_id=501))
    assert world.check_runs_for(REPO, SHA) == []
    assert world.calls_for(TOKENS) == []
