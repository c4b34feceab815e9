"""The dashboard pages, with proposals opened and voted on through webhooks."""

from __future__ import annotations

import hashlib
import hmac
import re
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pinkflow_bot.runtime import Runtime
from pinkflow_bot.settings import Settings
from pinkflow_bot.web.app import create_app
from pinkflow_bot.links import link_is_valid, proposal_link
from tests.harness import WEBHOOK_SECRET, app_under_test
from tests.proposal_world import DOCS, SCRIPT_REASON, SHOP, VAULT, World, recent_clock, seed_world

GITHUB_WEB = "https://github.com"


class Tables(HTMLParser):
    """Every table of a page as rows of cell texts, header rows included."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
async def world(tmp_path, fake_github, app_private_key):
    seed_world(fake_github)
    async with app_under_test(
        tmp_path, github_url=fake_github.url, private_key=app_private_key, clock=recent_clock()
    ) as app:
        yield World(app, fake_github)


def signature(world: World, proposal_id: int) -> str:
    link = proposal_link(world.app.runtime.settings, proposal_id=proposal_id, private=True)
    return parse_qs(urlsplit(link).query)["sig"][0]


async def page(world: World, path: str, **params) -> tuple[int, str]:
    response = await world.app.client.get(path, params=params)
    return response.status, await response.text()


async def test_the_list_shows_public_proposals_newest_first_with_their_tally(world):
    shop = await world.open(SHOP, 12)
    await world.open(VAULT, 7)
    docs = await world.open(DOCS, 3)
    await world.say(SHOP, 12, ("/approve looks right", "ann"), ("/reject", "max"), ("/abstain", "dan"))

    status, html = await page(world, "/")
    assert status == 200
    assert "<h1>Recent proposals</h1>" in html
    [table] = Tables(html).tables
    header, *rows = table
    assert header == ["Repository", "Pull request", "State", "Tally", "Time left", "Commit", "Details"]
    assert [row[0] for row in rows] == [DOCS, SHOP]  # newest first, the private one left out
    docs_row, shop_row = rows
    sha = (await world.proposal(shop)).head_sha
    assert shop_row[1:3] == ["#12", "Voting"]
    assert shop_row[3] == "1 approve · 1 reject · 1 abstain 60% approval, needs 75%"
    assert re.fullmatch(r"23h 5\dm", shop_row[4]), shop_row[4]
    assert shop_row[5:] == [sha[:7], f"Proposal {shop} details"]
    assert docs_row[3].startswith("0 approve · 0 reject · 0 abstain")
    assert f'href="{GITHUB_WEB}/{SHOP}/pull/12"' in html
    assert f'href="/proposals/{shop}"' in html and f'href="/proposals/{docs}"' in html
    assert "vault" not in html


async def test_a_proposal_page_shows_votes_weights_reasons_rules_and_the_audit_trail(world):
    shop = await world.open(SHOP, 12)
    await world.say(SHOP, 12, ("/reject", "ann"), ("/approve changed my mind", "ann"), (f"/reject {SCRIPT_REASON}", "max"))

    status, html = await page(world, f"/proposals/{shop}")
    assert status == 200
    assert f"<h1>{SHOP} #12: proposal {shop}</h1>" in html
    assert html.count("<h1>") == 1
    assert "The vote is open." in html
    assert f'<a href="{GITHUB_WEB}/{SHOP}/pull/12">' in html
    assert '<a href="https://preview-abc.example.dev" rel="noopener noreferrer">' in html
    assert "passes at 75% weighted approval · quorum 3 voters · voting period 24h" in html
    assert "Not available: the vote has not passed" in html

    votes, audit = Tables(html).tables
    assert votes[0] == ["Voter", "Vote", "Weight", "Reason", "Cast"]
    assert [row[:4] for row in votes[1:]] == [
        ["ann", "Approve", "3", "changed my mind"],  # the latest vote of each voter counts
        ["max", "Reject", "2", SCRIPT_REASON],
    ]
    # The reason is shown as text, never run as a script.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT_REASON not in html
    assert "Approve 1 (weight 3) · reject 1 (weight 2)" in html and "<strong>60%</strong>" in html

    assert audit[0] == ["When", "Who", "What", "Detail"]
    actors = [row[1] for row in audit[1:]]
    assert actors[0] == "max" and actors[-1] == "pinkflow"  # newest first: the opening is last
    assert [row[2] for row in audit[1:]][-1] == "opened"


async def test_a_proposal_page_says_why_a_vote_did_not_count(world):
    shop = await world.open(SHOP, 12)
    await world.say(SHOP, 12, ("/approve", "tia"), ("/approve ship it", "alice"), ("/approve", "ann"))
    _, html = await page(world, f"/proposals/{shop}")
    votes, audit = Tables(html).tables
    assert [row[0] for row in votes[1:]] == ["ann"]
    # The voters left out of the tally are in the trail, with why: the setting to ask about
    # is shown as code, not with the backticks of the status comment's markdown.
    assert ["tia", "vote not counted", "approve: needs write permission or above, has triage (voters.min_permission in .github/pinkflow.yml)"] in [row[1:] for row in audit]
    assert ["alice", "vote not counted", "approve: authors do not vote on their own pull request (voters.allow_author in .github/pinkflow.yml)"] in [row[1:] for row in audit]
    assert "(<code>voters.allow_author</code> in .github/pinkflow.yml)" in html
    assert "`" not in html


async def test_a_reason_with_backticks_or_markup_is_shown_as_text_its_backticked_part_as_code(world):
    shop = await world.open(SHOP, 12)
    await world.say(SHOP, 12, ("/reject the `<footer>` overlaps <b>the</b> banner", "dan"))
    _, html = await page(world, f"/proposals/{shop}")
    shown = "the <code>&lt;footer&gt;</code> overlaps &lt;b&gt;the&lt;/b&gt; banner"
    assert f'<td class="text" data-label="Reason">{shown}</td>' in html  # as GitHub shows the comment
    assert f"reject (weight 1): {shown}" in html


def preview_health_shown(html: str) -> str | None:
    found = re.search(r'<dd id="preview-health">(.*?)</dd>', html, re.DOTALL)
    return None if found is None else unescape(" ".join(found.group(1).split()))


@pytest.mark.parametrize(
    ("status", "elapsed_ms", "error", "shown"),
    [
        pytest.param(503, 87, None, "answers 503 in 87 ms.", id="failing"),
        pytest.param(200, 40, None, "answers 200 in 40 ms.", id="healthy"),
        pytest.param(None, None, "no answer: its host name was not found", "no answer: its host name was not found.", id="no-answer"),
    ],
)
async def test_a_proposal_page_shows_the_previews_health_as_the_status_comment_does(world, status, elapsed_ms, error, shown):
    shop = await world.open(SHOP, 12)
    proposal = await world.proposal(shop)
    await world.app.runtime.service.record_preview_health(
        proposal_id=shop, preview_url=proposal.preview_url, status=status, elapsed_ms=elapsed_ms, error=error
    )
    await world.app.drain()  # the status comment is synced too
    _, html = await page(world, f"/proposals/{shop}")
    assert preview_health_shown(html) == shown
    [comment] = [c["body"] for c in world.fake.comments_on(SHOP, 12) if "pinkflow:status" in c["body"]]
    assert f"Preview health: {shown}" in comment


async def test_a_passed_proposal_offers_promotion_and_then_shows_it(world):
    shop = await world.open(SHOP, 12)
    await world.say(SHOP, 12, ("/approve", "ann"), ("/approve", "max"), ("/approve", "dan"))
    _, html = await page(world, f"/proposals/{shop}")
    assert '<span class="state state-passed">Passed</span>' in html
    assert "Ready: use the Promote button on the check run" in html

    await world.say(SHOP, 12, ("/promote", "max"))
    _, html = await page(world, f"/proposals/{shop}")
    [deployment] = world.fake.calls_for("repos/create-deployment")
    assert '<span class="state state-promoted">Promoted</span>' in html
    assert "Promotion to production: deployment created, waiting for it to start" in html
    assert "<dt>Requested by</dt><dd>max</dd>" in html
    audit = Tables(html).tables[-1]
    assert audit[1][1:3] == ["pinkflow", "promoted"]
    assert deployment.status == 201


async def test_a_private_proposal_needs_its_signed_link_and_looks_missing_without_it(world):
    vault = await world.open(VAULT, 7)
    shop = await world.open(SHOP, 12)
    await world.say(VAULT, 7, ("/approve ship it", "ann"))

    missing_status, missing = await page(world, "/proposals/987654")
    assert missing_status == 404
    for attempt in ({}, {"sig": "0" * 64}, {"sig": signature(world, shop)}, {"sig": ""}):
        status, html = await page(world, f"/proposals/{vault}", **attempt)
        assert (status, html) == (404, missing), attempt
    assert "vault" not in missing

    status, html = await page(world, f"/proposals/{vault}", sig=signature(world, vault))
    assert status == 200
    assert f"<h1>{VAULT} #7: proposal {vault}</h1>" in html
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert "ship it" in html


async def test_a_signed_private_page_is_not_cached_and_its_links_send_no_referrer(world):
    vault = await world.open(VAULT, 7)
    response = await world.app.client.get(f"/proposals/{vault}", params={"sig": signature(world, vault)})
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src" not in response.headers["Content-Security-Policy"]  # no scripts at all


@pytest.mark.parametrize("path", ["/proposals/abc", "/proposals/0", "/proposals/-1", "/proposals/99999999999999999999999"])
async def test_malformed_proposal_addresses_answer_the_same_404_page(world, path):
    status, html = await page(world, path)
    assert status == 404
    assert "<h1>Proposal not found</h1>" in html


@pytest.mark.parametrize("path", ["/proposal/1", "/dashboard", "/proposals/1/votes", "/setup/"])
async def test_an_address_that_leads_nowhere_answers_a_page_that_says_so_and_leads_back(world, path):
    response = await world.app.client.get(path)
    html = await response.text()
    assert response.status == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in html
    assert '<a href="/">Back to the start page</a>' in html
    assert '<nav aria-label="Main">' in html


async def test_an_api_address_that_leads_nowhere_answers_json(world):
    response = await world.app.client.get("/api/proposal/1")
    assert response.status == 404
    assert await response.json() == {"error": "not found"}
    # Only GET and HEAD get the page: a POST elsewhere than the webhook intake still gets a plain 404.
    assert (await world.app.client.post("/api/github/webhook", data=b"{}")).status == 404


async def test_a_preview_address_that_is_not_http_is_shown_but_never_linked(world):
    shop = await world.open(SHOP, 12, url="javascript:alert(document.cookie)")
    _, html = await page(world, f"/proposals/{shop}")
    assert "javascript:alert(document.cookie)" in html
    assert 'href="javascript:' not in html


async def test_an_empty_dashboard_says_how_proposals_appear(world):
    status, html = await page(world, "/")
    assert status == 200
    assert "No proposals of public repositories yet" in html and "<table" not in html


@pytest.mark.parametrize(
    ("public_url", "github_url", "why"),
    [
        pytest.param(None, None, "that is this machine's own address", id="PUBLIC_URL-unset"),
        pytest.param("http://127.0.0.1:3000", None, "that is this machine's own address", id="loopback"),
        pytest.param("http://192.168.1.20:3000", None, "that is an address on a private network", id="private-network"),
        pytest.param("https://votes.example.org", None, None, id="public"),
        pytest.param("http://10.0.0.5:3000", "https://ghe.internal", None, id="enterprise-server-on-the-same-network"),
    ],
)
async def test_the_setup_page_warns_when_github_cannot_reach_the_webhook_url(tmp_path, public_url, github_url, why):
    values = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}", "PORT": "3000", "LOG_FORMAT": "text"}
    values.update({"PUBLIC_URL": public_url} if public_url else {})
    values.update({"GITHUB_URL": github_url} if github_url else {})
    runtime = await Runtime.create(Settings.from_mapping(values, env_file=tmp_path / ".env"))
    client = TestClient(TestServer(create_app(runtime)))
    await client.start_server()
    try:
        response = await client.get("/setup")
        html = unescape(" ".join((await response.text()).split()))
    finally:
        await client.close()
        await runtime.close()
    assert response.status == 200 and "<h1>Set up pinkflow-bot</h1>" in html
    shown = f"GitHub cannot send webhooks to <code>{public_url or 'http://localhost:3000'}</code>: {why}, and GitHub refuses it"
    if why is None:
        assert "GitHub cannot send webhooks" not in html
    else:
        assert shown in html
        assert "Set <code>PUBLIC_URL</code> to an address GitHub can reach" in html
        # Said before the owner is chosen and the button is pressed.
        assert html.index(shown) < html.index("Who will own the App") < html.index("Register pinkflow-bot on GitHub")


def test_links_are_absolute_and_signed_only_for_private_repositories():
    settings = Settings.from_mapping({"PUBLIC_URL": "https://votes.example.org/", "WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert proposal_link(settings, proposal_id=5, private=False) == "https://votes.example.org/proposals/5"
    signed = proposal_link(settings, proposal_id=5, private=True)
    base, _, query = signed.partition("?")
    assert base == "https://votes.example.org/proposals/5"
    [sig] = parse_qs(query)["sig"]
    assert re.fullmatch(r"[0-9a-f]{64}", sig)
    assert link_is_valid(settings, proposal_id=5, signature=sig)
    assert not link_is_valid(settings, proposal_id=6, signature=sig)
    assert not link_is_valid(settings, proposal_id=5, signature=None)
    other_secret = Settings.from_mapping({"WEBHOOK_SECRET": "another-secret"})
    assert not link_is_valid(other_secret, proposal_id=5, signature=sig)
    # The link key is not the webhook secret itself: a webhook signature of the id is no link signature.
    assert sig != hmac.new(WEBHOOK_SECRET.encode(), b"proposal:5", hashlib.sha256).hexdigest()
