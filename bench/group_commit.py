"""A prototype of group commit for intake, to measure what it would gain.

    DATABASE_URL=... WEBHOOK_SECRET=... python bench/group_commit.py --port 8124

It answers like the App's intake (the same checks through gidgethub, the same
`deliveries` rows, committed before the answer), but concurrent requests do not each
open a transaction: they queue their row, and one writer stores every row waiting in
one transaction, with one INSERT ... ON CONFLICT DO NOTHING RETURNING and one commit
(one fsync), then answers them all. Under load the cost of a commit is shared by the
batch; alone, a delivery is committed at once, as today.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402
from gidgethub import ValidationFailure, sansio  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from pinkflow_bot.storage import inbox  # noqa: E402
from pinkflow_bot.storage.database import WRITE, create_engine, migrate  # noqa: E402
from pinkflow_bot.storage.models import Delivery  # noqa: E402

MAX_BATCH = 256
MAX_BODY_BYTES = 25 * 1024 * 1024


class GroupCommitter:
    """Stores delivery rows in batches: whatever is waiting when the writer is free."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[bool]]] = asyncio.Queue()
        table = Delivery.__table__
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statement = (
            insert(table).on_conflict_do_nothing(index_elements=["delivery_id"]).returning(table.c.delivery_id)
        )
        self.batches = 0
        self.rows = 0

    async def store(self, row: dict[str, Any]) -> bool:
        """True once the row is committed; False when its delivery id was stored before."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((row, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._engine.connect() as connection:
                    connection = await connection.execution_options(**WRITE)
                    async with connection.begin():
                        result = await connection.execute(self._statement, [row for row, _ in batch])
                        stored = set(result.scalars().all())
            except Exception as error:  # every request of the batch is answered with the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.rows += len(batch)
            answered: set[str] = set()
            for row, future in batch:
                delivery_id = row["delivery_id"]
                # A delivery id twice in one batch: the first is stored, the second a redelivery.
                future.set_result(delivery_id in stored and delivery_id not in answered)
                answered.add(delivery_id)


def create_app(secret: str, committer: GroupCommitter) -> web.Application:
    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def receive(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return error(413, "body too large")
        body = await request.read()
        signature = request.headers.get("X-Hub-Signature-256")
        if not signature:
            return error(401, "missing X-Hub-Signature-256")
        try:
            sansio.validate_event(body, signature=signature, secret=secret)
        except ValidationFailure:
            return error(401, "bad signature")
        event_name = request.headers.get("X-GitHub-Event")
        delivery_id = request.headers.get("X-GitHub-Delivery")
        if not event_name or not delivery_id or len(delivery_id) > 100:
            return error(400, "missing or bad X-GitHub-Event or X-GitHub-Delivery")
        if request.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return error(415, "expected Content-Type application/json")
        try:
            data = json.loads(body.decode("utf-8"))
        except ValueError:
            return error(400, "body is not valid JSON")
        if not isinstance(data, dict):
            return error(400, "body must be a JSON object")
        installation = data.get("installation")
        installation_id = installation.get("id") if isinstance(installation, dict) else None
        action = data.get("action")
        stored = await committer.store(
            dict(
                delivery_id=delivery_id,
                event=event_name,
                action=action if isinstance(action, str) else None,
                installation_id=installation_id if isinstance(installation_id, int) else None,
                serial_key=inbox.serial_key_for(event_name, data),
                body=body.decode("utf-8"),
                status="pending",
                attempts=0,
                received_at=datetime.now(timezone.utc),
                lease_until=None,
                processed_at=None,
                error=None,
            )
        )
        if not stored:
            return web.json_response({"ok": True, "duplicate": True}, status=200)
        return web.json_response({"ok": True}, status=202)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "batches": committer.batches, "rows": committer.rows})

    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app.router.add_post("/api/github/webhooks", receive)
    app.router.add_get("/api/health", health)
    return app


async def serve(port: int) -> None:
    engine = create_engine(os.environ["DATABASE_URL"])
    await migrate(engine)
    committer = GroupCommitter(engine)
    writer = asyncio.create_task(committer.run())
    runner = web.AppRunner(create_app(os.environ["WEBHOOK_SECRET"], committer), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        writer.cancel()
        await runner.cleanup()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
