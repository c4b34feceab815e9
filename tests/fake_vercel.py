"""A fake of the Vercel REST API endpoints the `vercel` provider calls, over HTTP on 127.0.0.1.

It keeps projects and deployments, checks the Bearer token and the team scope on every
request, refuses request bodies with keys Vercel does not document, records calls,
and can answer with a fault, before or after the request took effect.

Routes: `get-deployment` (GET /v13/deployments/{idOrUrl}), `create-deployment`
(POST /v13/deployments), `list-deployments` (GET /v6/deployments) and `promote`
(POST /v10/projects/{projectId}/promote/{deploymentId}).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

ROUTES = ("get-deployment", "create-deployment", "list-deployments", "promote")
# The documented request body of POST /v13/deployments.
CREATE_DEPLOYMENT_KEYS = frozenset(
    {
        "customEnvironmentSlugOrId",
        "deploymentId",
        "files",
        "gitMetadata",
        "gitSource",
        "meta",
        "monorepoManager",
        "name",
        "project",
        "projectSettings",
        "target",
        "withLatestCommit",
    }
)


@dataclass(frozen=True)
class VercelCall:
    method: str
    route: str | None
    path: str
    query: dict[str, str]
    json: Any
    status: int


@dataclass
class _Fault:
    route: str
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    effect_applied: bool


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


class FakeVercel:
    def __init__(self, *, token: str, team_id: str | None = None, team_slug: str = "acme") -> None:
        self.token = token
        self.team_id = team_id
        self.team_slug = team_slug
        self.projects: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.calls: list[VercelCall] = []
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._clock = itertools.count(int(time.time() * 1000))
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("start() the fake Vercel first")
        return f"http://127.0.0.1:{self._port}"

    # -- seeding and inspection -----------------------------------------------------------
    def add_project(self, name: str) -> dict[str, Any]:
        project = {"id": f"prj_{name}{next(self._ids)}", "name": name, "targets": {}}
        self.projects[project["id"]] = project
        return project

    def add_deployment(
        self,
        project: dict[str, Any],
        *,
        url: str,
        target: str | None = None,
        meta: dict[str, str] | None = None,
        ready_state: str = "READY",
        ready_substate: str | None = None,
    ) -> dict[str, Any]:
        deployment = {
            "id": f"dpl_{next(self._ids):04d}",
            "name": project["name"],
            "url": url,
            "projectId": project["id"],
            "target": target,
            "meta": dict(meta or {}),
            "readyState": ready_state,
            "readySubstate": ready_substate,
            "createdAt": next(self._clock),
            "source": "git",
        }
        self.deployments[deployment["id"]] = deployment
        return deployment

    def production_deployments(self, project: dict[str, Any]) -> list[dict[str, Any]]:
        return [d for d in self.deployments.values() if d["projectId"] == project["id"] and d["target"] == "production"]

    def calls_to(self, route: str) -> list[VercelCall]:
        if route not in ROUTES:
            raise ValueError(f"no route {route!r}")
        return [call for call in self.calls if call.route == route]

    def fail(
        self,
        route: str,
        *,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        effect_applied: bool = False,
    ) -> None:
        """Answer the next `times` requests to `route` with `status`; with `effect_applied`
        the request takes effect first, as when Vercel did the work and the answer was lost."""
        if route not in ROUTES:
            raise ValueError(f"no route {route!r}")
        self._faults.append(_Fault(route, status, times, dict(headers or {}), body, effect_applied))

    # -- serving --------------------------------------------------------------------------
    async def _serve(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        route, params = self._route(request)
        response = await self._answer(request, route, params, body)
        self.calls.append(VercelCall(request.method, route, request.path, dict(request.query), body, response.status))
        return response

    def _route(self, request: web.Request) -> tuple[str | None, list[str]]:
        parts = [part for part in request.path.split("/") if part]
        method = request.method
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v13", "deployments"]:
            return "get-deployment", [parts[2]]
        if method == "POST" and parts == ["v13", "deployments"]:
            return "create-deployment", []
        if method == "GET" and parts == ["v6", "deployments"]:
            return "list-deployments", []
        if method == "POST" and len(parts) == 5 and parts[:2] == ["v10", "projects"] and parts[3] == "promote":
            return "promote", [parts[2], parts[4]]
        return None, []

    async def _answer(
        self, request: web.Request, route: str | None, params: list[str], body: Any
    ) -> web.StreamResponse:
        if route is None:
            return _error(404, "not_found", "The requested API endpoint was not found.")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(403, "forbidden", "Not authorized", invalidToken=True)
        team = request.query.get("teamId")
        if team is not None and team != self.team_id:
            return _error(403, "forbidden", "You don't have permission to access this team.")
        if team is None and self.team_id is not None:
            # Without the team's scope, the personal account's (empty) resources are searched.
            return _error(404, "not_found", "The deployment could not be found.")
        fault = self._take_fault(route)
        if fault is not None and not fault.effect_applied:
            return self._fault_response(fault)
        response = getattr(self, "_" + route.replace("-", "_"))(request, params, body)
        if fault is not None:
            return self._fault_response(fault)
        return response

    def _take_fault(self, route: str) -> _Fault | None:
        for fault in self._faults:
            if fault.route == route:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: _Fault) -> web.Response:
        body = fault.body if fault.body is not None else {"error": {"code": "internal", "message": "Fault injected"}}
        return web.json_response(body, status=fault.status, headers=fault.headers)

    # -- routes ---------------------------------------------------------------------------
    def _find(self, id_or_url: str) -> dict[str, Any] | None:
        if id_or_url in self.deployments:
            return self.deployments[id_or_url]
        return next((d for d in self.deployments.values() if d["url"] == id_or_url), None)

    def _get_deployment(self, request: web.Request, params: list[str], body: Any) -> web.Response:
        deployment = self._find(params[0])
        if deployment is None:
            return _error(404, "not_found", "The deployment could not be found.")
        return web.json_response(deployment)

    def _create_deployment(self, request: web.Request, params: list[str], body: Any) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return _error(400, "bad_request", "Invalid request: missing required property `name`.")
        unknown = set(body) - CREATE_DEPLOYMENT_KEYS
        if unknown:
            return _error(
                400, "bad_request", f"Invalid request: should NOT have additional property `{sorted(unknown)[0]}`."
            )
        meta = body.get("meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) and len(v) <= 256 for v in meta.values()):
            return _error(
                400, "bad_request", "Invalid request: `meta` values must be strings of at most 256 characters."
            )
        if body.get("target") not in (None, "production", "staging", "preview"):
            return _error(400, "bad_request", "Invalid request: `target` must be production, staging or preview.")
        source = self.deployments.get(body.get("deploymentId") or "")
        if source is None:
            return _error(400, "bad_request", "Only redeploys of an existing deploymentId are served by this fake.")
        project = self.projects[source["projectId"]]
        if body.get("project") not in (None, project["id"], project["name"]):
            return _error(400, "bad_request", "The deployment does not belong to that project.")
        number = next(self._ids)
        created = self.add_deployment(
            project,
            url=f"{project['name']}-{number:06x}-{self.team_slug}.vercel.app",
            target=body.get("target"),
            meta={**source["meta"], **meta},
            ready_state="QUEUED",
        )
        return web.json_response(created)

    def _list_deployments(self, request: web.Request, params: list[str], body: Any) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _error(400, "bad_request", "Invalid request: `limit` must be a number.")
        found = [
            d
            for d in self.deployments.values()
            if query.get("projectId") in (None, d["projectId"]) and query.get("target") in (None, d["target"])
        ]
        found.sort(key=lambda d: d["createdAt"], reverse=True)
        # The list shows `uid` where a single deployment shows `id`.
        listed = [
            {
                "uid": d["id"],
                "name": d["name"],
                "url": d["url"],
                "created": d["createdAt"],
                "state": d["readyState"],
                "readyState": d["readyState"],
                "readySubstate": d["readySubstate"],
                "target": d["target"],
                "meta": d["meta"],
                "projectId": d["projectId"],
            }
            for d in found[:limit]
        ]
        return web.json_response(
            {"deployments": listed, "pagination": {"count": len(listed), "next": None, "prev": None}}
        )

    def _promote(self, request: web.Request, params: list[str], body: Any) -> web.Response:
        project_id, deployment_id = params
        project = self.projects.get(project_id)
        deployment = self.deployments.get(deployment_id)
        if project is None or deployment is None or deployment["projectId"] != project_id:
            return _error(404, "not_found", "Deployment not found.")
        if deployment["target"] != "production":
            return _error(400, "bad_request", "Only production deployments can be promoted without a rebuild.")
        deployment["readySubstate"] = "PROMOTED"
        project["targets"]["production"] = deployment_id
        return web.Response(status=201)
