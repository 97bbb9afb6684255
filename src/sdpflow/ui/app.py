"""The web application of ``sdpflow ui``: read-only pages and JSON over the run database.

Handlers are plain functions (Starlette runs them in its thread pool: the store is synchronous).
Every request must carry the token printed at start, as ``?token=`` (the first link) or in the
cookie set in answer to it; anything else is 403. Only GET (and HEAD) routes exist. A run's
files are served from its output folder: a path that leaves the folder (``..``, a symbolic
link pointing out) or names a hidden file (``.sdpflow``, the staging folder) is refused.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from sdpflow.errors import RunNotFound
from sdpflow.pipelines.run_records import (event_records, product_records, progress_record, run_record,
                                           science_summary)
from sdpflow.store import RunStore
from sdpflow.store.secrets import shown_secrets

#: The cookie holding the token, per port: cookies are not kept apart by port, two ``sdpflow ui`` must not share one.
TOKEN_COOKIE = "sdpflow_ui_token_{port}"
#: Runs the runs page reads before filtering, newest first.
RUNS_READ = 1000
#: Events shown on a run's page (the latest).
EVENTS_SHOWN = 200
#: The files a run's page links to when they exist, besides its recorded products.
RUN_FILES = ("report.html", "run-report.html", "dask-report.html", "config.yaml", "events.jsonl", "tasks.jsonl")
STATUSES = ("running", "completed", "failed", "interrupted", "stopped")

_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


class TokenRequired:
    """ASGI middleware: 403 unless the request carries ``token`` (query or cookie); a query token sets the cookie."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie_name = TOKEN_COOKIE.format(port=(scope.get("server") or ("", 0))[1])
        from_query = request.query_params.get("token")
        given = from_query or request.cookies.get(cookie_name) or ""
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            await PlainTextResponse("403: open the link sdpflow ui printed (it carries the token)",
                                    status_code=403)(scope, receive, send)
            return
        if from_query is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def create_app(store: RunStore, token: str) -> Starlette:
    """The application over ``store``; every request needs ``token``."""

    def run_of(request: Request) -> dict[str, Any]:
        return store.get_run(request.path_params["run_id"])

    def runs_page(request: Request) -> Response:
        wanted = {name: request.query_params.get(name, "").strip() for name in ("pipeline", "status", "q")}
        runs = [run_record(run) for run in store.list_runs(limit=RUNS_READ)]
        pipelines = sorted({run["pipeline"] for run in runs})
        shown = [run for run in runs if _matches(run, **wanted)]
        return _TEMPLATES.TemplateResponse(request, "runs.html", {
            "runs": shown, "pipelines": pipelines, "statuses": STATUSES, "wanted": wanted, "db": store.redacted_url})

    def run_page(request: Request) -> Response:
        run = run_of(request)
        out_dir = Path(run["out_dir"])
        products = product_records(store, run["id"])
        recorded = {product["path"] for product in products}
        files = [name for name in RUN_FILES if name not in recorded and (out_dir / name).is_file()]
        return _TEMPLATES.TemplateResponse(request, "run.html", {
            "run": run_record(run), "progress": progress_record(store, run),
            "events": event_records(store, run["id"], last=EVENTS_SHOWN), "products": products, "files": files,
            "config": yaml.safe_dump(shown_secrets(run["config"]), sort_keys=False),
            "summary": science_summary(run) if run["status"] == "completed" else None,
            "folder_exists": out_dir.is_dir(), "db": store.redacted_url})

    def runs_json(request: Request) -> Response:
        return JSONResponse([run_record(run) for run in store.list_runs(limit=RUNS_READ)])

    def progress_json(request: Request) -> Response:
        return JSONResponse(progress_record(store, run_of(request)))

    def run_file(request: Request) -> Response:
        run = run_of(request)
        path = _inside(Path(run["out_dir"]), request.path_params["path"])
        if path is None:
            return PlainTextResponse("403: that path is not a file of the run's folder", status_code=403)
        if not path.is_file():
            return PlainTextResponse(f"404: the run's folder holds no file {request.path_params['path']}",
                                     status_code=404)
        return FileResponse(path)

    async def not_found(request: Request, error: Exception) -> Response:
        return PlainTextResponse(f"404: {error}", status_code=404)

    routes = [
        Route("/", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/files/{path:path}", run_file),
        Route("/api/runs", runs_json),
        Route("/api/runs/{run_id}/progress", progress_json),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenRequired, token=token)],
                     exception_handlers={RunNotFound: not_found})


def _matches(run: dict[str, Any], *, pipeline: str, status: str, q: str) -> bool:
    """Whether a run passes the runs page's filters (each empty one passes all); ``q`` is a case-blind
    substring of its id, pipeline, folder or error."""
    if pipeline and run["pipeline"] != pipeline:
        return False
    if status and run["status"] != status:
        return False
    text = " ".join(str(run[key] or "") for key in ("id", "pipeline", "out_dir", "error")).lower()
    return q.lower() in text


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it lies inside ``root`` after resolving links and names no hidden entry."""
    parts = Path(relative).parts
    if not parts or any(part.startswith(".") for part in parts) or Path(relative).is_absolute():
        return None
    root = root.resolve()
    path = (root / relative).resolve()
    return path if root in path.parents else None
