"""`python app.py demo`: a whole vote against the embedded fake GitHub, then the dashboard."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp

from tests.paths import REPO_ROOT
from tests.process import free_port


async def test_the_demo_plays_a_vote_prints_what_the_bot_posted_and_keeps_the_dashboard_up(tmp_path):
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO_ROOT / "app.py"), "demo",
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    printed = []
    try:
        async def read_until_dashboard() -> None:
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("the demo ended early:\n" + "".join(printed))
                printed.append(line)
                if line.startswith("Dashboard:"):
                    return

        await asyncio.wait_for(read_until_dashboard(), timeout=90)
        output = "".join(printed)
        assert "### Pinkflow governance: Promoted to production" in output
        assert "| @olivia | ✅ approve | 3 | checkout flow works on mobile and desktop |" in output
        assert "@rita: not counted" in output and "@sam-the-author: not counted" in output
        assert "completed / success: Promoted to production" in output
        # The preview is served by the demo itself: its link opens and its health check answers.
        [preview_url] = re.findall(r"\*\*Preview:\*\* <(http://127\.0\.0\.1:\d+)> \(environment Preview\)", output)
        assert re.search(r"^Preview health: answers 200 in \d+ ms\.$", output, re.MULTILINE)
        # A comment's every line is shown: dan's vote is the /abstain under his quoted /reject.
        assert re.search(r"dan: > /reject +\(none\)\n +Quoting myself: the footer is fixed now\.\n +/abstain\n", output)
        assert output.count("--- Production deployment ---") == 1
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as response:
                assert response.status == 200
                assert "acme/storefront" in await response.text()
            async with http.get(preview_url) as response:
                assert response.status == 200
                assert "acme/storefront #42" in await response.text()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_taken_port_stops_the_demo_with_one_line_that_says_how_to_choose_another(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(REPO_ROOT / "app.py"), "demo",
            cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 1
    assert stderr.decode().strip() == (
        f"the demo cannot listen on 127.0.0.1:{port}: port {port} is taken; "
        f"choose another port: PORT={port + 1} ./scripts/start demo"
    )
    assert "Traceback" not in stdout.decode()
