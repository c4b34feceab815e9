"""pinkflow-bot: `python app.py [serve|web|worker|migrate|demo]`.

serve   web server and worker in one process (the default)
web     only the web server (intake, API, pages); run workers beside it
worker  only the worker (deliveries, effects, deadlines)
migrate bring the database schema up to date and exit
demo    play a whole vote against an embedded fake GitHub, then keep the dashboard up
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from pinkflow_bot.error_reports import init_error_reports
from pinkflow_bot.logs import configure_logging
from pinkflow_bot.runtime import Runtime
from pinkflow_bot.settings import Settings, SettingsError
from pinkflow_bot.storage.database import create_engine, is_sqlite, migrate
from pinkflow_bot.web.app import create_app, create_monitoring_app

log = logging.getLogger("pinkflow_bot")


class CannotStart(Exception):
    """What the App could not do at start, in one line that names the setting to look at."""


# What reaching the database or a port can fail with: network and file errors (timeouts
# among them), the database's own, and a driver missing for the URL.
STARTUP_ERRORS = (OSError, SQLAlchemyError, ImportError)


async def run_migrations(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    except STARTUP_ERRORS as error:
        raise CannotStart(database_problem(settings.database_url, error)) from None
    finally:
        await engine.dispose()
    log.info("database is up to date")


async def run(settings: Settings, *, with_web: bool, with_worker: bool) -> None:
    try:
        runtime = await Runtime.create(settings, with_worker=with_worker)
    except STARTUP_ERRORS as error:
        raise CannotStart(database_problem(settings.database_url, error)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, stop)
    runner = None
    try:
        if with_web:
            runner = await serve(create_app(runtime), settings.host, settings.port, names="HOST, PORT")
            log.info("listening", extra={"url": f"http://{settings.host}:{settings.port}", "public_url": settings.public_url})
        elif settings.metrics_port is not None:
            # A worker on its own: its health and metrics, so each process can be probed and
            # scraped. With the web server in the process they are on its one port.
            runner = await serve(create_monitoring_app(runtime), settings.host, settings.metrics_port, names="HOST, METRICS_PORT")
            log.info("serving health and metrics", extra={"url": f"http://{settings.host}:{settings.metrics_port}"})
        keep_out_of_collections()
        if not settings.configured and with_web:
            log.warning("no GitHub App credentials (APP_ID, PRIVATE_KEY, WEBHOOK_SECRET): serving the setup page only")
        elif not settings.configured:
            log.warning("no GitHub App credentials (APP_ID, PRIVATE_KEY, WEBHOOK_SECRET): waiting for the setup page to write them")
            asyncio.create_task(take_up_credentials(runtime), name="pinkflow-await-credentials")
        elif with_worker:
            runtime.start_worker()
            log.info("worker started")
        await stop.wait()
        log.info("stopping")
    finally:
        # Stop taking requests (and scrapes) first, then let the worker finish what it holds.
        if runner is not None:
            await runner.cleanup()
        await runtime.close(grace_seconds=settings.shutdown_grace)


async def serve(app: web.Application, host: str, port: int, *, names: str = "HOST, PORT") -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise CannotStart(f"cannot listen on {host}:{port} ({names}): {error.strerror or one_line(error)}") from None
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def database_problem(url: str, error: BaseException) -> str:
    """Which database could not be used (its password left out) and why."""
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    if isinstance(error, TimeoutError):
        why = "no answer in time"
    elif isinstance(error, OSError) and error.strerror:
        why = error.strerror
    else:
        # The driver's own words, without SQLAlchemy's "(module.Error)" before them.
        why = one_line(getattr(error, "orig", None) or error)
    if is_sqlite(url) and "unable to open database file" in why:
        why += " (its folder must exist and be writable by this user)"
    return f"database {shown} (DATABASE_URL): {why}"


def _on_signal(stop: asyncio.Event) -> None:
    if stop.is_set():
        # Asked twice: stop now. Acknowledged deliveries are committed; work in hand is
        # taken over by the next run once its lease lapses.
        log.warning("asked again to stop: stopping now")
        os._exit(130)
    stop.set()


async def take_up_credentials(runtime: Runtime, *, every_seconds: float = 5.0) -> None:
    """A worker started before the App was registered: the setup page of a web process
    writes the credentials to `.env`; this process takes them up when they appear."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            settings = Settings.load(env_file=runtime.settings.env_file)
        except SettingsError as error:
            log.warning("credentials not taken up: %s", error)
            continue
        if settings.configured:
            await runtime.apply_credentials(settings)
            log.info("GitHub App credentials found: worker started")
            return


def keep_out_of_collections() -> None:
    """What startup built (modules, the app, pools, caches) lives as long as the process,
    so the cycle collector is told to skip it: a full collection then takes milliseconds,
    not the 60 to 90 ms that otherwise stall a vote's decision now and then."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configured from the environment or a .env file in the working folder (APP_ID, PRIVATE_KEY, "
        "WEBHOOK_SECRET, DATABASE_URL, PORT, ...): see the README's 'Configuration of the service'.",
    )
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "web", "worker", "migrate", "demo"], help="default: serve"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secrets())
    init_error_reports(settings)
    if args.command == "demo":
        from pinkflow_bot.demo import run_demo

        # The demo's own settings: it needs no credentials and touches no database of yours.
        configure_logging(level="warning", fmt="text")
        asyncio.run(run_demo(port=settings.port, host="127.0.0.1"))
        return 0
    try:
        if args.command == "migrate":
            asyncio.run(run_migrations(settings))
            return 0
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run(settings, with_web=args.command in ("serve", "web"), with_worker=args.command in ("serve", "worker")))
    except KeyboardInterrupt:
        # Ctrl-C before the App was up (waiting for the database, migrating): nothing was
        # acknowledged yet, and a migration's transaction is rolled back.
        print("stopped before the App was up", file=sys.stderr)
        return 130
    except CannotStart as error:
        # The database cannot be reached, the port is taken: one line that says which, not a traceback.
        print(f"cannot start: {error}", file=sys.stderr)
        return 1
    except STARTUP_ERRORS as error:
        print(f"cannot start: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


def one_line(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return first.removeprefix("(Background on this error at")[:300]


def event_loop_factory():
    """uvloop where it is installed (Linux and macOS): its event loop does the network I/O
    in C, so each request costs the process less CPU."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
