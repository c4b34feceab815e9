"""The pages in a real browser: headless Chromium driven by Playwright, on a phone and a desktop.

Chromium comes from the system (`scripts/ensure-chromium` installs it); Playwright's own
browser downloads are never used. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from pinkflow_bot.runtime import Runtime
from pinkflow_bot.settings import Settings
from pinkflow_bot.web.app import create_app
from tests.harness import app_under_test
from tests.proposal_world import SCRIPT_REASON, SHOP, DOCS, VAULT, World, recent_clock, seed_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"

# What a person relying on assistive technology or a keyboard would trip over, read from the page.
ACCESSIBILITY_REPORT = """
() => {
  const parse = (color) => {
    const m = color.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const parts = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { rgb: parts.slice(0, 3), alpha: parts.length > 3 ? parts[3] : 1 };
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c && c.alpha > 0) return c.rgb;
    }
    return [255, 255, 255];
  };
  const lowContrast = [];
  for (const el of document.querySelectorAll("body *")) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.display === "none" || style.visibility === "hidden" || !box.width || !box.height) continue;
    const fg = parse(style.color);
    if (!fg) continue;
    const [a, b] = [luminance(fg.rgb), luminance(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) lowContrast.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  const levels = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")].map((h) => Number(h.tagName[1]));
  const skipped = levels.filter((level, i) => i > 0 && level > levels[i - 1] + 1);
  const fields = [...document.querySelectorAll("input, select, textarea")].filter(
    (f) => !["hidden", "submit", "button"].includes(f.type));
  const named = (el) => (el.textContent.trim() || el.getAttribute("aria-label") || el.getAttribute("title") || "");
  return {
    lang: document.documentElement.lang,
    title: document.title,
    viewportMeta: !!document.querySelector('meta[name="viewport"]'),
    h1: levels.filter((l) => l === 1).length,
    firstHeading: levels[0] || null,
    skippedHeadingLevels: skipped.length,
    landmarks: {
      banner: !!document.querySelector("body > header"),
      navigation: !!document.querySelector("nav"),
      main: document.querySelectorAll("main").length,
      contentinfo: !!document.querySelector("body > footer"),
    },
    imagesWithoutAlt: [...document.images].filter((img) => !img.hasAttribute("alt")).length,
    unlabelledFields: fields.filter((f) => !f.labels.length && !f.getAttribute("aria-label")).map((f) => f.name),
    unnamedButtons: [...document.querySelectorAll("button")].filter((b) => !named(b)).length,
    unnamedLinks: [...document.querySelectorAll("a[href]")].filter((a) => !named(a)).length,
    headerCellsWithoutScope: [...document.querySelectorAll("th")].filter((th) => !th.getAttribute("scope")).length,
    pageScrollsSideways: document.documentElement.scrollWidth > window.innerWidth + 1,
    lowContrast,
  };
}
"""


def assert_accessible(report: dict) -> None:
    assert report["lang"] == "en"
    assert report["title"] and report["viewportMeta"]
    assert (report["h1"], report["firstHeading"], report["skippedHeadingLevels"]) == (1, 1, 0)
    assert report["landmarks"] == {"banner": True, "navigation": True, "main": 1, "contentinfo": True}
    assert report["imagesWithoutAlt"] == 0
    assert report["unlabelledFields"] == []
    assert (report["unnamedButtons"], report["unnamedLinks"], report["headerCellsWithoutScope"]) == (0, 0, 0)
    # Wide tables scroll inside their own box; the page itself never does.
    assert not report["pageScrollsSideways"]
    assert report["lowContrast"] == []


@pytest.fixture
async def browser(tmp_path):
    """A fresh headless Chromium profile; fails (never skips) when Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run scripts/ensure-chromium", pytrace=False)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORTS["desktop"],
        )
        try:
            yield context
        finally:
            await context.close()


async def open_page(browser, viewport: str):
    page = await browser.new_page()
    await page.set_viewport_size(VIEWPORTS[viewport])
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.dialogs = dialogs  # any alert() would mean a script from a comment ran
    return page


async def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def check_accessibility(page) -> None:
    assert_accessible(await page.evaluate(ACCESSIBILITY_REPORT))
    # The first Tab lands on the skip link, and the focus can be seen.
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "() => { const el = document.activeElement, s = getComputedStyle(el);"
        " return { text: el.textContent.trim(), outline: s.outlineStyle, width: parseFloat(s.outlineWidth) }; }"
    )
    assert focused["text"] == "Skip to content"
    assert focused["outline"] != "none" and focused["width"] >= 2


async def test_registering_the_app_from_the_setup_page(browser, tmp_path, fake_github, app_private_key):
    env_file = tmp_path / ".env"
    settings = Settings.from_mapping(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'pinkflow.db'}",
            "GITHUB_API_URL": fake_github.url,
            "GITHUB_URL": fake_github.web_url,
            "LOG_FORMAT": "text",
        },
        env_file=env_file,
    )
    runtime = await Runtime.create(settings)
    server = TestServer(create_app(runtime))
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        # The manifest's URLs must lead back to this server: its public address is known once it listens.
        runtime.settings = dataclasses.replace(runtime.settings, public_url=base)
        fake_github.manifest_pem = app_private_key
        # github.com itself is not reachable from here: its installation page is stood in for.
        install_pages: list[str] = []

        async def github_page(route):
            install_pages.append(route.request.url)
            await route.fulfill(status=200, content_type="text/html", body="<h1>Install pinkflow-bot</h1>")

        for viewport in ("phone", "desktop"):
            page = await open_page(browser, viewport)
            await page.goto(f"{base}/setup")
            assert await page.locator("h1").inner_text() == "Set up pinkflow-bot"
            await screenshot(page, f"setup-{viewport}")
            await check_accessibility(page)
            if viewport == "phone":
                await page.close()

        await page.route("https://github.com/**", github_page)
        await page.get_by_role("button", name="Register pinkflow-bot on GitHub").click()
        await page.wait_for_url(f"{fake_github.web_url}/settings/apps/new?state=*")
        assert await page.locator("h1").inner_text() == "Create GitHub App"
        await page.get_by_role("button", name="Create GitHub App for pinkflow-bot").click()
        await page.wait_for_url("https://github.com/apps/pinkflow-bot/installations/new")
        assert install_pages == ["https://github.com/apps/pinkflow-bot/installations/new"]

        [received] = fake_github.received_manifests
        assert received["manifest"]["hook_attributes"]["url"] == f"{base}/api/github/webhooks"
        assert received["manifest"]["redirect_url"] == f"{base}/setup/callback"
        assert runtime.settings.configured and runtime.worker_alive
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

        await page.goto(f"{base}/setup")
        assert await page.locator("h1").inner_text() == "pinkflow-bot is set up"
        await check_accessibility(page)
        # Closed to registering, the page still leads on to installing the App.
        await page.get_by_role("link", name="Install pinkflow-bot on repositories").click()
        await page.wait_for_url("https://github.com/apps/pinkflow-bot/installations/new")
        assert install_pages == ["https://github.com/apps/pinkflow-bot/installations/new"] * 2
        await page.goto(f"{base}/setup")
        await page.get_by_role("link", name="Go to the dashboard").click()
        assert await page.locator("h1").inner_text() == "Recent proposals"
    finally:
        await server.close()
        await runtime.close()


@pytest.fixture
async def world(tmp_path, fake_github, app_private_key):
    seed_world(fake_github)
    async with app_under_test(
        tmp_path, github_url=fake_github.url, private_key=app_private_key, clock=recent_clock()
    ) as app:
        yield World(app, fake_github)


async def test_the_dashboard_and_a_proposal_page_on_a_phone_and_a_desktop(browser, world):
    shop = await world.open(SHOP, 12)
    await world.open(VAULT, 7)
    await world.open(DOCS, 3)
    await world.say(
        SHOP,
        12,
        ("/approve looks good on mobile and desktop, checked the checkout flow twice", "ann"),
        ("/approve", "max"),
        (f"/reject {SCRIPT_REASON}", "dan"),
    )
    base = str(world.app.client.make_url("")).rstrip("/")

    for viewport in VIEWPORTS:
        page = await open_page(browser, viewport)
        await page.goto(f"{base}/")
        assert await page.locator("h1").inner_text() == "Recent proposals"
        rows = page.locator("table tbody tr")
        assert await rows.count() == 2
        assert await rows.nth(0).locator("th").inner_text() == DOCS
        assert await rows.nth(1).locator("th").inner_text() == SHOP
        assert "Passed" in await rows.nth(1).inner_text()
        assert "vault" not in await page.content()
        await screenshot(page, f"dashboard-{viewport}")
        await check_accessibility(page)

        await page.get_by_role("link", name=f"Proposal {shop} details").click()
        await page.wait_for_url(f"{base}/proposals/{shop}")
        assert await page.locator("h1").inner_text() == f"{SHOP} #12: proposal {shop}"
        votes = page.get_by_role("table", name="Votes that count: each voter's latest")
        assert await votes.locator("thead th").all_inner_texts() == ["Voter", "Vote", "Weight", "Reason", "Cast"]
        cells = [await row.locator("th, td").all_inner_texts() for row in await votes.locator("tbody tr").all()]
        assert [cell[:4] for cell in cells] == [
            ["ann", "Approve", "3", "looks good on mobile and desktop, checked the checkout flow twice"],
            ["max", "Approve", "2", ""],
            ["dan", "Reject", "1", SCRIPT_REASON],
        ]
        assert page.dialogs == []  # the reason is text, not a script that ran
        promote = await page.locator("#promote-state").inner_text()
        assert promote.startswith("Ready: use the Promote button on the check run")
        audit = page.get_by_role("table", name="What happened, newest first")
        assert await audit.locator("tbody tr").count() >= 4
        await screenshot(page, f"proposal-{viewport}")
        await check_accessibility(page)
        await page.close()


# Each table as a person on the page sees it: what is cut off at the right edge, and the
# column name shown beside each value.
TABLES_AS_SEEN = """
() => [...document.querySelectorAll("table")].map((table) => {
  const region = table.closest(".table-scroll");
  const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  const cells = [...table.querySelectorAll("tbody tr")].flatMap((row) => [...row.children].map((cell, i) => ({
    header: headers[i],
    text: cell.textContent.trim(),
    right: cell.getBoundingClientRect().right,
    label: getComputedStyle(cell, "::before").content,
    tag: cell.tagName,
  })));
  const shown = cells.filter((cell) => cell.text);
  return {
    caption: table.caption.textContent.trim(),
    scrollsSideways: region.scrollWidth > region.clientWidth + 1,
    cutOff: shown.filter((cell) => cell.right > window.innerWidth).map((cell) => `${cell.header}: ${cell.text}`),
    unlabelled: shown.filter((cell) => cell.tag === "TD" && cell.label !== `"${cell.header}"`).map((cell) => cell.header),
  };
})
"""


async def test_on_a_phone_every_column_of_a_table_is_on_screen_with_its_name(browser, world):
    shop = await world.open(SHOP, 12)
    await world.open(DOCS, 3)
    await world.say(SHOP, 12, ("/approve looks good on mobile and desktop", "ann"), ("/reject the footer overlaps", "dan"))
    base = str(world.app.client.make_url("")).rstrip("/")
    page = await open_page(browser, "phone")

    await page.goto(f"{base}/")
    [proposals] = await page.evaluate(TABLES_AS_SEEN)
    assert proposals == {"caption": "The newest proposals first", "scrollsSideways": False, "cutOff": [], "unlabelled": []}
    # The link to each proposal, in the last column, is there to tap without scrolling sideways.
    details = page.get_by_role("link", name=f"Proposal {shop} details")
    box = await details.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORTS["phone"]["width"]

    await page.goto(f"{base}/proposals/{shop}")
    tables = await page.evaluate(TABLES_AS_SEEN)
    assert [table["caption"] for table in tables] == ["Votes that count: each voter's latest", "What happened, newest first"]
    for table in tables:
        assert (table["scrollsSideways"], table["cutOff"], table["unlabelled"]) == (False, [], []), table
    votes = page.get_by_role("table", name="Votes that count: each voter's latest")
    assert await votes.get_by_role("cell", name="the footer overlaps").is_visible()
    await check_accessibility(page)
    await page.close()

    # On a desktop the same tables stay tables, one row a line under their column names.
    page = await open_page(browser, "desktop")
    await page.goto(f"{base}/proposals/{shop}")
    assert await page.locator("table thead th").first.is_visible()
    for table in await page.evaluate(TABLES_AS_SEEN):
        assert table["unlabelled"] and not table["cutOff"]
    await page.close()
