"""The viewer's web application: a JSON API over :class:`RunFolder` and one static page.

Built on Starlette served by uvicorn: a small, well-kept ASGI toolkit (routing, static files, JSON
responses, a thread pool for blocking handlers) with few dependencies, where the page is ours; a
Gradio-style toolkit would bring a large front end and its own CDN-loaded assets. The page (``static/``:
HTML, CSS, JavaScript, no framework) is served from the package; nothing is loaded from the web.

API (all GET, JSON unless said): ``/api/summary``; ``/api/docs?start=&n=``; ``/api/doc/{i}``;
``/api/random``; ``/api/search?q=&field=text|url|domain&start=&limit=``; ``/api/funnel``;
``/api/drops?stage=&level=&reason=&limit=``; ``/api/compare/{i}`` and
``/api/compare?warc_filename=&offset=&length=`` (a dropped page); ``/api/image?url=`` (image bytes).
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline.view.runfolder import RunFolder

STATIC = Path(__file__).with_name("static")
MEDIA_TYPES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
               "bmp": "image/bmp", "tiff": "image/tiff", "avif": "image/avif", "mpo": "image/jpeg"}
MAX_PAGE = 200

log = logging.getLogger("obelics.view")


def _int(request, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    raw = request.query_params.get(name)
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    value = max(lo, value)
    return min(hi, value) if hi is not None else value


def create_app(out: str) -> Starlette:
    """The application over the run folder ``out`` (local path or object-store URI)."""
    run = RunFolder(out)

    def api(fn):
        def endpoint(request):
            try:
                return fn(request)
            except IndexError as e:
                return JSONResponse({"error": str(e)}, status_code=404)
            except (ValueError, KeyError, FileNotFoundError) as e:
                return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=400)
        return endpoint

    def index(request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def summary(request):
        label, files = run.source()
        plan = run.run_plan()
        return JSONResponse({"out": run.out, "source": label, "files": len(files), "documents": run.count(),
                             "finished": run.finished, "profile": plan.get("profile"),
                             "inputs": len(plan.get("inputs", []))})

    def docs(request):
        return JSONResponse(run.page(_int(request, "start", 0), _int(request, "n", 20, 1, MAX_PAGE)))

    def doc(request):
        return JSONResponse(run.document(int(request.path_params["index"])))

    def rand(request):
        seed = request.query_params.get("seed")
        return JSONResponse({"index": run.random_index(int(seed) if seed else None)})

    def search(request):
        q = request.query_params.get("q", "").strip()
        if not q:
            raise ValueError("empty query")
        return JSONResponse(run.search(q, request.query_params.get("field", "text"), _int(request, "start", 0),
                                       _int(request, "limit", 20, 1, MAX_PAGE)))

    def funnel(request):
        return JSONResponse(run.funnel())

    def drops(request):
        from pipeline.view.drops import sample

        p = request.query_params
        return JSONResponse(sample(run.out, p["stage"], p.get("level", "document"), p["reason"],
                                   limit=_int(request, "limit", 5, 1, 50)))

    def compare(request):
        from pipeline.view.compare import extract_both

        d = run.document(int(request.path_params["index"]))
        return JSONResponse({"index": d["index"], "url": d["url"], "profiles": extract_both(run.out, d["warc"])})

    def compare_record(request):  # a page the run dropped: named by its WARC pointer
        p = request.query_params
        warc = {"warc_filename": p["warc_filename"], "warc_record_offset": int(p["offset"]),
                "warc_record_length": int(p["length"])}
        from pipeline.view.compare import extract_both

        return JSONResponse({"index": None, "url": p.get("url"), "profiles": extract_both(run.out, warc)})

    def image(request):
        url = request.query_params.get("url", "")
        found = run.image(url) if url else None
        if found is None:
            return Response("image not in this run", status_code=404, media_type="text/plain")
        data, fmt = found
        return Response(data, media_type=MEDIA_TYPES.get((fmt or "").lower(), "application/octet-stream"),
                        headers={"Cache-Control": "max-age=3600"})

    routes = [
        Route("/", index),
        Route("/api/summary", api(summary)),
        Route("/api/docs", api(docs)),
        Route("/api/doc/{index:int}", api(doc)),
        Route("/api/random", api(rand)),
        Route("/api/search", api(search)),
        Route("/api/funnel", api(funnel)),
        Route("/api/drops", api(drops)),
        Route("/api/compare/{index:int}", api(compare)),
        Route("/api/compare", api(compare_record)),
        Route("/api/image", api(image)),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


def serve(out: str, host: str = "127.0.0.1", port: int = 8765, announce=print) -> None:
    """Serve the viewer of ``out`` on ``host:port`` until interrupted (loopback only by default).

    The socket is bound here, so ``port=0`` picks a free port and ``announce`` is told the real address.
    """
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # listening before the address is announced: a client may connect at once
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    announce(f"obelics view: serving {out} on http://{shown}:{bound}/ (Ctrl-C stops)")
    server = uvicorn.Server(uvicorn.Config(create_app(out), log_level="warning"))
    server.run(sockets=[sock])
