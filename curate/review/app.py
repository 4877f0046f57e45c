"""The review app: server-rendered Starlette pages over one run, read once at start.

Starlette (served by uvicorn) with Jinja2 templates: plain HTML forms and links and a few
lines of inline script, so nothing is downloaded into the browser and nothing is compiled.
Pages: ``/`` browse, ``/row/<id>`` (ids URL-encoded, may hold ``/``), ``/raw?id=&field=``,
``/clusters``, ``/cluster/<id>``, ``/label``, ``/report``. The app writes only in
``<run>/review/`` (labels and the few-shot export).
"""
from __future__ import annotations

import secrets
import threading
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .alignment import LABELS
from ..errors import CurateError, OutputError
from . import agreement, clusters
from .guard import Guard, security_headers
from .labels import EXPERT_ANSWER, EXPERT_CRITIQUE, EXPERT_OUTCOME, JudgedStage, LabelStore, Walk, judged_stages
from .lineage import ExportLines, pretty, row_page, shown
from .table import Query, RunTable

MAX_FORM_BYTES = 200_000
WARM_AFTER = 2.0  # seconds the warm-up waits for the first page before it starts


class Review:
    """What the app holds for one run."""

    def __init__(self, table: RunTable, sample: int | None = None, seed: int = 0):
        self.table, self.sample, self.seed = table, sample, seed
        self.exports, self.store = ExportLines(table), LabelStore(table.folder)
        self.judges = {j.stage: j for j in judged_stages(table)}
        self.walks: dict[str, Walk] = {}

    def warm(self, first_request: threading.Event) -> None:
        """Once the first page is out (or after a moment), build the search index, the id
        and lineage lookups and the export line offsets, so that no later page waits."""
        first_request.wait(timeout=WARM_AFTER)
        self.table.warm()
        self.exports.warm()

    def judge(self, name: str | None) -> JudgedStage | None:
        return self.judges.get(name) or next(iter(self.judges.values()), None)

    def walk(self, judge: JudgedStage) -> Walk:
        if judge.stage not in self.walks:
            self.walks[judge.stage] = Walk(self.table, judge, self.sample, self.seed)
        return self.walks[judge.stage]


ENV = jinja2.Environment(loader=jinja2.PackageLoader("curate.review", "templates"),
                         autoescape=True, trim_blocks=True, lstrip_blocks=True)
ENV.filters.update(pct=lambda v: "–" if v is None else f"{v:.1%}",
                   fixed=lambda v: "–" if v is None or v != v else f"{v:.3f}",
                   url=lambda v: quote(str(v), safe=""))


def render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    nonce = secrets.token_urlsafe(12)
    review: Review = request.app.state.review
    html = ENV.get_template(name).render(
        nonce=nonce, form_token=request.scope["state"].get("form_token", ""),
        manifest=review.table.manifest, folder=str(review.table.folder),
        has_judge=bool(review.judges), has_clusters=review.table.clusters is not None,
        **context)
    request.app.state.first_request.set()
    return HTMLResponse(html, status_code=status, headers=security_headers(nonce))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _plain(status: int, line: str) -> Response:
    return Response(line + "\n", status_code=status, media_type="text/plain")


async def _form(request: Request) -> dict[str, str] | Response:
    """The POSTed form, or the one-line answer refusing it: too large (read to its end but
    kept only up to the limit) or lacking the page's form token."""
    body, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_FORM_BYTES:
            body += chunk
    if size > MAX_FORM_BYTES:
        return _plain(413, f"the form is larger than {MAX_FORM_BYTES // 1000} KB: shorten the "
                           "critique or the corrected answer")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                         keep_blank_values=True).items()}
    expected = request.scope["state"].get("form_token", "")
    if not secrets.compare_digest(form.get("form_token", ""), expected):
        return _plain(403, "forbidden: the form lacks this page's token; reload the page")
    return form


# -- browse and row pages ---------------------------------------------------------------------
async def browse(request: Request) -> Response:
    table = request.app.state.review.table
    query = Query.from_params(request.query_params)
    page = table.page(query)

    def link(**changes) -> str:
        return "/?" + urlencode(query.params(**changes))

    return render(request, "browse.html", query=query, page=page, choices=table.choices(),
                  measures=table.measures, link=link, rows=table.manifest.get("rows", {}))


async def row(request: Request) -> Response:
    review: Review = request.app.state.review
    row_id = request.path_params["row_id"]
    page = row_page(review.table, review.exports, row_id)
    if page is None:
        return render(request, "missing.html", status=404, row_id=row_id)
    return render(request, "row.html", row=page)


async def cluster_index(request: Request) -> Response:
    table = request.app.state.review.table
    return render(request, "clusters.html", unclustered=clusters.unclustered(table),
                  clusters=clusters.cluster_list(table) if table.clusters is not None else [])


async def cluster(request: Request) -> Response:
    table = request.app.state.review.table
    page = clusters.cluster_page(table, request.path_params["cluster_id"])
    if page is None:
        return render(request, "missing.html", status=404, row_id=None,
                      what=f"cluster {request.path_params['cluster_id']!r}")
    return render(request, "cluster.html", cluster=page)


async def raw(request: Request) -> Response:
    """A row's whole field (``?id=&field=``) or export line (``?id=&export=``), as text."""
    review: Review = request.app.state.review
    params = request.query_params
    position = review.table.position(params.get("id", ""))
    if position is None:
        return _plain(404, f"not found: no row {params.get('id', '')!r} in this run")
    if "export" in params:
        text = review.exports.raw(params["export"], position)
    else:
        value = review.table.record(position).get(params.get("field", ""))
        text = None if value is None else pretty(value)
    if text is None:
        return _plain(404, "not found: this row has no such field or export line")
    return Response(text, media_type="text/plain",
                    headers=security_headers(secrets.token_urlsafe(12)))


async def report(request: Request) -> Response:
    path = request.app.state.review.table.folder / "report.html"
    if not path.is_file():
        return render(request, "missing.html", status=404, row_id=None, what="report.html")
    return HTMLResponse(path.read_text(encoding="utf-8"),
                        headers=security_headers(secrets.token_urlsafe(12)))


# -- labelling ------------------------------------------------------------------------------------
def _panel(review: Review, judge: JudgedStage) -> dict:
    labels = agreement.read_labels(review.store, judge)
    rounds = agreement.rounds(labels, judge)
    rescored = agreement.current_judge_on_all(review.table, labels, judge) \
        if len(rounds) > 1 else None
    return {"current": agreement.figures(agreement.this_round(labels, judge), "this round", True),
            "rounds": rounds, "rescored": rescored}


async def label_start(request: Request) -> Response:
    review: Review = request.app.state.review
    judge = review.judge(request.query_params.get("judge"))
    if judge is None:
        return render(request, "label.html", judge=None, item=None, panel=None)
    walk = review.walk(judge)
    target = walk.next_unlabelled(set(review.store.labels_for(judge))) or \
        (walk.ids[0] if walk.ids else None)
    if target is None:
        return render(request, "label.html", judge=judge, item=None, panel=_panel(review, judge))
    return _redirect(f"/label/{quote(target, safe='')}?judge={quote(judge.stage)}")


def _label_item(review: Review, judge: JudgedStage, row_id: str) -> dict | None:
    position = review.table.position(row_id)
    walk = review.walk(judge)
    if position is None or row_id not in walk.index:
        return None
    record = review.table.record(position)
    labels = review.store.labels_for(judge)
    fields = [(f, shown(record, f)) for f in judge.fields]
    others = [(f, shown(record, f)) for f in review.table.fields
              if f not in judge.fields and f not in (judge.critique, judge.verdict)
              and record.get(f) is not None]
    return {"id": row_id, "fields": fields, "others": others,
            "critique": shown(record, judge.critique, compact=True) if judge.critique else None,
            "verdict": record.get(judge.verdict), "label": labels.get(row_id),
            "at": walk.index[row_id] + 1, "total": len(walk),
            "done": sum(i in labels for i in walk.ids),
            "previous": walk.neighbour(row_id, -1), "next": walk.neighbour(row_id, 1)}


async def label_row(request: Request) -> Response:
    review: Review = request.app.state.review
    judge = review.judge(request.query_params.get("judge"))
    row_id = request.path_params["row_id"]
    item = _label_item(review, judge, row_id) if judge else None
    if item is None:
        return render(request, "missing.html", status=404, row_id=row_id,
                      what="a judged row to label")
    return render(request, "label.html", judge=judge, item=item, panel=_panel(review, judge),
                  exported=request.query_params.get("exported"),
                  skipped=request.query_params.get("skipped"),
                  unsaved=review.store.write_problem())


async def _judged_form(request: Request) -> tuple[JudgedStage, dict] | Response:
    """The judge a POST labels for and its form, or the one-line answer refusing it."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    judge = request.app.state.review.judge(request.query_params.get("judge"))
    if judge is None:
        return _plain(404, "not found: no stage of this run gives verdicts to label")
    return judge, form


async def label_save(request: Request) -> Response:
    review: Review = request.app.state.review
    answer = await _judged_form(request)
    if isinstance(answer, Response):
        return answer
    (judge, form), row_id = answer, request.path_params["row_id"]
    if row_id not in review.walk(judge).index:
        return _plain(404, f"not found: row {row_id!r} is not one of the rows stage "
                           f"{judge.stage!r} judged (the rows to label)")
    if form.get(EXPERT_OUTCOME) not in LABELS:
        return _plain(400, f"bad request: the outcome must be one of {', '.join(LABELS)}")
    position = review.table.position(row_id)
    review.store.save(judge, review.table.record(position), form[EXPERT_OUTCOME],
                      form.get(EXPERT_CRITIQUE, ""), form.get(EXPERT_ANSWER, ""))
    walk = review.walk(judge)
    target = walk.next_unlabelled(set(review.store.labels_for(judge)), after=row_id) or row_id
    return _redirect(f"/label/{quote(target, safe='')}?judge={quote(judge.stage)}")


async def few_shot(request: Request) -> Response:
    review: Review = request.app.state.review
    answer = await _judged_form(request)
    if isinstance(answer, Response):
        return answer
    judge, form = answer
    exported, skipped = agreement.export_few_shot(review.table, _panel(review, judge)["current"])
    row_id = form.get("row") or ""
    target = f"/label/{quote(row_id, safe='')}" if row_id else "/label"
    counts = {"judge": judge.stage, "exported": exported, "skipped": skipped}
    return _redirect(f"{target}?{urlencode(counts)}")


async def run_folder_problem(request: Request, error: CurateError) -> Response:
    """A labels file that cannot be read or written (damaged, read-only, disk full)."""
    problem = f"nothing was saved: {error}" if isinstance(error, OutputError) else str(error)
    return render(request, "missing.html", status=500, row_id=None, problem=problem)


async def no_icon(request: Request) -> Response:
    return Response(status_code=204)


def create_app(folder, *, sample: int | None = None, seed: int = 0, token: str | None = None,
               loopback: bool = True, host: str = "127.0.0.1") -> Starlette:
    """The app for the run in ``folder`` (read now: a bad folder raises a CurateError).
    ``host`` is the address it listens on: its name is served beside the loopback ones."""
    review = Review(RunTable(folder), sample=sample, seed=seed)
    first_request = threading.Event()
    threading.Thread(target=review.warm, args=(first_request,), daemon=True).start()
    routes = [Route("/", browse), Route("/row/{row_id:path}", row), Route("/raw", raw),
              Route("/report", report), Route("/clusters", cluster_index),
              Route("/cluster/{cluster_id}", cluster),
              Route("/label", label_start), Route("/label/{row_id:path}", label_row),
              Route("/label/{row_id:path}", label_save, methods=["POST"]),
              Route("/few-shot", few_shot, methods=["POST"]),
              Route("/favicon.ico", no_icon)]
    app = Starlette(routes=routes,
                    middleware=[Middleware(Guard, token=token, loopback=loopback, host=host)],
                    exception_handlers={CurateError: run_folder_problem})
    app.state.review, app.state.first_request = review, first_request
    return app
