"""The hub's web pages: server-rendered (Jinja2, autoescaped), session cookie, CSRF-checked forms.

The pages use the services the REST API uses, with the same permissions; they only add the
browser's way of logging in (a signed session cookie, ``sb_session``) and a CSRF token on every
form (``fastapi-csrf-protect``: a signed double-submit cookie ``sb_csrf`` plus a hidden
``csrf_token`` field).  No inline script runs (CSP ``script-src 'self'``): the job page's live
progress comes from ``static/hub.js`` polling ``/pages-api/jobs/{id}``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadData, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import select
from starlette.datastructures import FormData

from secured_bio.hub.deps import SessionDep, require_role
from secured_bio.hub.errors import Conflict, Forbidden, HubError, Invalid, NotFound, Unauthorized
from secured_bio.hub.models import (
    DATASET_KINDS,
    JOB_KINDS,
    AccessRequest,
    AuditEvent,
    Site,
    User,
)
from secured_bio.hub.services import access, accounts, artifacts, catalogue, duo, jobs
from secured_bio.hub.services.audit import append_event, verify_chain

__all__ = ["router", "error_page", "page_user", "csrf_protect", "JOB_FIELDS"]

router = APIRouter(include_in_schema=False)

_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(_TEMPLATES),
                                            autoescape=True))

_CSRF_SALT = "fastapi-csrf-token"  # the salt fastapi-csrf-protect signs its cookie with
_CSRF_COOKIE = "sb_csrf"
_FINISHED = ("succeeded", "failed", "cancelled")

#: typed form fields per job kind: (param, label, input type, choices); the rest as key=value
JOB_FIELDS: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {
    "gwas_secure": [
        ("test", "Association test", "select", ("linear", "logistic", "allelic", "trend")),
        ("pheno_name", "Phenotype column (default: the first)", "text", ()),
        ("covar_name", "Covariate columns, comma-separated (default: all)", "text", ()),
        ("pcs", "Principal components", "int", ()),
        ("firth", "Firth regression (logistic)", "bool", ()),
        ("intersect", "Analyse the variants common to all sites", "bool", ()),
    ],
    "anonymize": [
        ("quasi_identifiers", "Quasi-identifier columns, comma-separated", "text", ()),
        ("k", "k (k-anonymity)", "int", ()),
        ("sensitive", "Sensitive column (for l and t)", "text", ()),
        ("l", "l (l-diversity)", "int", ()),
        ("t", "t (t-closeness)", "float", ()),
    ],
    "synthesize": [
        ("rows", "Synthetic rows", "int", ()),
        ("method", "Method", "select", ("auto", "copula", "cart", "tvae", "mst")),
        ("epsilon", "DP epsilon (method mst; charged to the grant's budget)", "float", ()),
    ],
    "education_cases": [
        ("method", "Method", "select", ("copula", "tvae", "mst")),
        ("epsilon", "DP epsilon (charged to the grant's budget)", "float", ()),
    ],
    "fl_train": [],
}
_LIST_PARAMS = {"covar_name", "quasi_identifiers"}


# -- CSRF ---------------------------------------------------------------------------------------

def csrf_protect(request: Request) -> Any:
    """Return the app's CSRF protector (a ``CsrfProtect`` subclass configured for it).

    ``CsrfProtect``'s configuration is class-level, so each app gets its own subclass,
    configured once from ``request.app.state`` (several apps in one process keep their keys).
    """
    cls: Any = getattr(request.app.state, "csrf_class", None)
    if cls is None:
        from fastapi_csrf_protect import CsrfProtect

        settings = request.app.state.settings
        cls = type("HubCsrfProtect", (CsrfProtect,), {})

        @cls.load_config
        def _config() -> list[tuple[str, Any]]:
            return [("secret_key", request.app.state.signing_key), ("token_location", "body"),
                    ("token_key", "csrf_token"), ("cookie_key", _CSRF_COOKIE),
                    ("cookie_samesite", "strict"), ("cookie_secure", settings.secure_cookies),
                    ("max_age", settings.session_minutes * 60)]

        request.app.state.csrf_class = cls
    return cls()


CsrfDep = Annotated[Any, Depends(csrf_protect)]


def _csrf_token(request: Request, csrf: Any) -> tuple[str, str | None]:
    """Return the form token, and the signed cookie to set unless the browser's is good.

    Reusing a valid cookie keeps forms of several open tabs working.
    """
    signed = request.cookies.get(_CSRF_COOKIE)
    if signed:
        serializer = URLSafeTimedSerializer(request.app.state.signing_key, salt=_CSRF_SALT)
        max_age = request.app.state.settings.session_minutes * 60
        try:  # a token close to expiry is renewed
            return str(serializer.loads(signed, max_age=max(60, max_age - 600))), None
        except BadData:
            pass
    token, signed = csrf.generate_csrf_tokens(request.app.state.signing_key)
    return token, signed


async def _form(request: Request, csrf: Any) -> FormData:
    """Read the posted form and check its CSRF token (403 when it does not match)."""
    from fastapi_csrf_protect.exceptions import CsrfProtectError

    form = await request.form()
    try:
        await csrf.validate_csrf(request)
    except CsrfProtectError as e:
        raise Forbidden("the form expired, reload the page",
                        fix="reload the page and send the form again") from e
    return form


# -- the logged-in user -------------------------------------------------------------------------

def page_user(request: Request, session: SessionDep) -> User:
    """Return the user of the session cookie (401, i.e. the login page, when none)."""
    uid = request.session.get("uid")
    user = session.get(User, uid) if isinstance(uid, int) else None
    if user is None or user.disabled:
        request.session.clear()
        raise Unauthorized("log in first", fix="log in at /login")
    return user


PageUser = Annotated[User, Depends(page_user)]


def _render(request: Request, name: str, user: User | None, csrf: Any, *,
            status_code: int = 200, **context: Any) -> Response:
    token, signed = _csrf_token(request, csrf)
    resp = templates.TemplateResponse(
        request, name, {"user": user, "csrf_token": token, "nav": _nav(user),
                        "path": request.url.path, **context},
        status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    if signed is not None:
        csrf.set_csrf_cookie(signed, resp)
    return resp


def _nav(user: User | None) -> list[tuple[str, str]]:
    if user is None:
        return []
    items = [("/", "Dashboard"), ("/datasets", "Catalogue"), ("/beacon", "Beacon"),
             ("/requests", "Requests"), ("/jobs", "Jobs")]
    if user.role == "researcher":
        items.insert(4, ("/requests/new", "New request"))
    if user.role in ("admin", "committee"):
        items.append(("/audit", "Audit"))
    return items


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    """Return a local path to go to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def error_page(request: Request, exc: HubError) -> Response:
    """Answer a page's 401 (redirect to the login page), 403 or 404 in HTML."""
    if exc.status == 401:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _redirect("/login?next=" + quote(here, safe=""))
    title = {403: "Not allowed", 404: "Not found"}.get(exc.status, "Error")
    uid = request.session.get("uid") if "session" in request.scope else None
    with request.app.state.sessions() as s:  # the header shows who is logged in
        user = s.get(User, uid) if isinstance(uid, int) else None
        return _render(request, "error.html", user, csrf_protect(request),
                       status_code=exc.status, title=title, message=exc.message, fix=exc.fix)


# -- login --------------------------------------------------------------------------------------

@router.get("/login")
def login_form(request: Request, csrf: CsrfDep, next: str = "/") -> Response:
    """Show the login form."""
    return _render(request, "login.html", None, csrf, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request, session: SessionDep, csrf: CsrfDep) -> Response:
    """Check the password (rate-limited, audited); start a session."""
    form = await _form(request, csrf)
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    client = request.client.host if request.client else "?"
    try:
        request.app.state.login_limiter.hit(username, client)
        user = accounts.authenticate(session, username, password, client=client)
    except HubError as e:
        return _render(request, "login.html", None, csrf, status_code=e.status,
                       next=target, error=e.message, username=username)
    request.session.clear()
    request.session["uid"] = user.id
    return _redirect(target)


@router.post("/logout")
async def logout(request: Request, csrf: CsrfDep) -> Response:
    """End the session."""
    await _form(request, csrf)
    request.session.clear()
    return _redirect("/login")


# -- dashboard ----------------------------------------------------------------------------------

@router.get("/")
def dashboard(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
              ) -> Response:
    """Show what needs the user's attention, by role."""
    ctx: dict[str, Any] = {}
    if user.role == "researcher":
        ctx["requests"] = access.visible_requests(session, user)
        ctx["jobs"] = jobs.visible_jobs(session, user)
    elif user.role == "committee":
        ctx["requests"] = [r for r in access.visible_requests(session, user)
                           if r.status == "pending"]
    elif user.role == "steward":
        ctx["datasets"] = (catalogue.list_datasets(session, site=user.site.name)
                           if user.site else [])
        ctx["jobs"] = jobs.visible_jobs(session, user)
    else:
        ctx["sites"] = list(session.scalars(select(Site).order_by(Site.name)))
        ctx["users"] = list(session.scalars(select(User).order_by(User.username)))
        ctx["chain"] = verify_chain(session)
    return _render(request, "dashboard.html", user, csrf, **ctx)


# -- catalogue ----------------------------------------------------------------------------------

@router.get("/datasets")
def datasets_page(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep,
                  q: str = "", kind: str = "", site: str = "") -> Response:
    """Search the catalogue."""
    kind = kind if kind in DATASET_KINDS else ""
    rows = catalogue.list_datasets(session, q=q.strip()[:200] or None, kind=kind or None,
                                   site=site or None)
    sites = list(session.scalars(select(Site.name).order_by(Site.name)))
    return _render(request, "datasets.html", user, csrf, datasets=rows, q=q, kind=kind,
                   site=site, sites=sites, kinds=DATASET_KINDS, counts=_counts,
                   duo_label=duo.describe)


@router.get("/datasets/{dataset_id}")
def dataset_page(dataset_id: int, request: Request, session: SessionDep, user: PageUser,
                 csrf: CsrfDep) -> Response:
    """One dataset with all its aggregate metadata."""
    ds = catalogue.get_dataset(session, dataset_id)
    return _render(request, "dataset.html", user, csrf, ds=ds, duo_label=duo.describe)


def _counts(meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Pick the counts among a dataset's metadata (``n_samples: 120``...)."""
    return [(k.removeprefix("n_").replace("_", " "), v) for k, v in meta.items()
            if k.startswith("n_") and isinstance(v, int) and not isinstance(v, bool)][:4]


# -- access requests ----------------------------------------------------------------------------

def _request_form_context(session: Any, values: dict[str, Any]) -> dict[str, Any]:
    return {"datasets": catalogue.list_datasets(session), "job_kinds": JOB_KINDS,
            "purposes": [(c, duo.describe(c)) for c in duo.PURPOSES], "values": values}


@router.get("/requests/new")
def new_request_form(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
                     ) -> Response:
    """Show the access request form (datasets ticked in the catalogue pre-selected)."""
    require_role(user, "researcher")
    picked = [int(v) for v in request.query_params.getlist("datasets") if v.isdigit()]
    values = {"datasets": picked, "analyses": ["gwas_secure"], "code": "DUO:0000006",
              "purpose": "", "disease": "", "genetic_study": True, "not_for_profit_org": True}
    return _render(request, "request_new.html", user, csrf, error=None,
                   **_request_form_context(session, values))


@router.post("/requests/new")
async def create_request(request: Request, session: SessionDep, user: PageUser,
                         csrf: CsrfDep) -> Response:
    """File the request (DUO conditions checked); errors re-show the form."""
    form = await _form(request, csrf)
    require_role(user, "researcher")
    flags = ("commercial", "ethics_approval", "methods_development", "genetic_study",
             "not_for_profit_org")
    values: dict[str, Any] = {
        "datasets": [int(str(v)) for v in form.getlist("datasets") if str(v).isdigit()],
        "analyses": [str(v) for v in form.getlist("analyses")],
        "purpose": str(form.get("purpose", "")), "code": str(form.get("code", "")),
        "disease": str(form.get("disease", ""))[:200],
        **{f: form.get(f) == "on" for f in flags},
    }
    terms = {"code": values["code"], "disease": values["disease"],
             **{f: values[f] for f in flags}}
    try:
        req = access.create_request(session, user, dataset_ids=values["datasets"],
                                    purpose=values["purpose"], analyses=values["analyses"],
                                    purpose_terms=terms)
    except (Invalid, NotFound) as e:
        session.rollback()
        return _render(request, "request_new.html", user, csrf, status_code=e.status,
                       error=e.message, fix=e.fix, **_request_form_context(session, values))
    return _redirect(f"/requests/{req.id}")


@router.get("/requests")
def requests_page(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
                  ) -> Response:
    """List the requests the user may see."""
    return _render(request, "requests.html", user, csrf,
                   requests=access.visible_requests(session, user))


def _request_page(request: Request, session: Any, user: User, csrf: Any, req: AccessRequest,
                  *, error: HubError | None = None) -> Response:
    names = {link.dataset_id: link.dataset for link in req.datasets}
    return _render(request, "request.html", user, csrf, req=req, datasets=names,
                   duo_label=duo.describe, job_kinds=JOB_KINDS,
                   can_decide=user.role == "committee" and req.status == "pending",
                   error=error, status_code=error.status if error else 200)


@router.get("/requests/{request_id}")
def request_page(request_id: int, request: Request, session: SessionDep, user: PageUser,
                 csrf: CsrfDep) -> Response:
    """One request, its DUO check and decision (the committee decides here)."""
    return _request_page(request, session, user, csrf,
                         access.get_request(session, user, request_id))


@router.post("/requests/{request_id}/decision")
async def decide(request_id: int, request: Request, session: SessionDep, user: PageUser,
                 csrf: CsrfDep) -> Response:
    """Record the committee's decision."""
    form = await _form(request, csrf)
    require_role(user, "committee")
    req = access.get_request(session, user, request_id)
    try:
        expires = _parse_date(str(form.get("expires_at", "")))
        budget_text = str(form.get("dp_budget", "")).strip()
        try:
            budget = float(budget_text) if budget_text else None
        except ValueError as e:
            raise Invalid("the DP budget must be a number (epsilon)") from e
        access.decide(session, user, req, decision=str(form.get("decision", "")),
                      reason=str(form.get("reason", "")), expires_at=expires,
                      allowed_kinds=[str(k) for k in form.getlist("allowed_kinds")] or None,
                      dp_budget=budget)
    except (Invalid, Conflict) as e:
        session.rollback()
        return _request_page(request, session, user, csrf,
                             access.get_request(session, user, request_id), error=e)
    return _redirect(f"/requests/{req.id}")


def _parse_date(text: str) -> dt.datetime | None:
    """``YYYY-MM-DD`` -> the end of that day (UTC); empty -> None."""
    text = text.strip()
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as e:
        raise Invalid("the expiry is not a date", fix="use YYYY-MM-DD") from e
    return dt.datetime.combine(day, dt.time(23, 59, 59))


# -- jobs ---------------------------------------------------------------------------------------

@router.get("/jobs")
def jobs_page(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
              ) -> Response:
    """List the jobs the user may see."""
    return _render(request, "jobs.html", user, csrf, jobs=jobs.visible_jobs(session, user))


def _job_form(request: Request, session: Any, user: User, csrf: Any, req: AccessRequest,
              values: dict[str, Any], error: HubError | None = None) -> Response:
    kinds = list(req.allowed_kinds or req.analyses)
    return _render(request, "job_new.html", user, csrf, req=req, kinds=kinds,
                   datasets=[link.dataset for link in req.datasets], fields=JOB_FIELDS,
                   values=values, error=error, status_code=error.status if error else 200)


@router.get("/jobs/new")
def new_job_form(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
                 ) -> Response:
    """Show the job form for one of the researcher's approved requests (``?request=ID``)."""
    require_role(user, "researcher")
    rid = request.query_params.get("request", "")
    if not rid.isdigit():
        raise NotFound("no access request given", fix="open /jobs/new?request=ID")
    req = access.get_request(session, user, int(rid))
    if req.status != "approved":
        raise Forbidden(f"access request {req.id} is {req.status}, not approved",
                        fix="wait for the committee's approval")
    kinds = list(req.allowed_kinds or req.analyses)
    values: dict[str, Any] = {"kind": kinds[0] if kinds else "", "params": {}, "extra": "",
                              "datasets": [link.dataset_id for link in req.datasets]}
    return _job_form(request, session, user, csrf, req, values)


def _job_params(kind: str, form: FormData) -> dict[str, Any]:
    """Collect the typed fields of ``kind`` plus ``key=value`` lines as the job's params."""
    params: dict[str, Any] = {}
    for name, _label, typ, _choices in JOB_FIELDS.get(kind, []):
        raw = str(form.get(f"{kind}.{name}", "")).strip()
        if typ == "bool":
            if raw == "on":
                params[name] = True
            continue
        if not raw:
            continue
        params[name] = _typed(name, raw, typ)
    for n, line in enumerate(str(form.get("extra", "")).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise Invalid(f"line {n} of the extra params is not key=value",
                          fix="write one key=value per line")
        params[key.strip()] = _typed(key.strip(), value.strip(), "auto")
    return params


def _typed(name: str, raw: str, typ: str) -> Any:
    try:
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
    except ValueError as e:
        raise Invalid(f"param {name!r} must be a {'whole ' if typ == 'int' else ''}number") from e
    if name in _LIST_PARAMS:
        return [v.strip() for v in raw.split(",") if v.strip()]
    if typ == "auto":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        for conv in (int, float):
            try:
                return conv(raw)
            except ValueError:
                pass
        if "," in raw:
            return [v.strip() for v in raw.split(",") if v.strip()]
    return raw


@router.post("/jobs/new")
async def create_job(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
                     ) -> Response:
    """Start a job within a grant; errors re-show the form."""
    form = await _form(request, csrf)
    require_role(user, "researcher")
    rid = str(form.get("request", ""))
    if not rid.isdigit():
        raise NotFound("no access request given")
    req = access.get_request(session, user, int(rid))
    kind = str(form.get("kind", ""))
    ids = [int(str(v)) for v in form.getlist("datasets") if str(v).isdigit()]
    values = {"kind": kind, "datasets": ids, "extra": str(form.get("extra", "")),
              "params": {k: v for k, v in form.multi_items() if "." in k}}
    try:
        params = _job_params(kind, form)
        job = jobs.create_job(session, user, request_id=req.id, kind=kind, dataset_ids=ids,
                              params=params, coordinate=request.app.state.coordinate)
    except (Invalid, Forbidden, Conflict, NotFound) as e:
        session.rollback()
        return _job_form(request, session, user, csrf,
                         access.get_request(session, user, int(rid)), values, e)
    return _redirect(f"/jobs/{job.id}")


@router.get("/jobs/{job_id}")
def job_page(job_id: int, request: Request, session: SessionDep, user: PageUser,
             csrf: CsrfDep) -> Response:
    """Show a job's status, live (``static/hub.js`` polls ``/pages-api/jobs/{id}``)."""
    job = jobs.get_job(session, user, job_id)
    return _render(request, "job.html", user, csrf, job=job, info=jobs.job_json(job),
                   finished=job.status in _FINISHED,
                   can_cancel=job.status not in _FINISHED and (
                       user.role == "admin" or job.created_by == user.id))


@router.get("/pages-api/jobs/{job_id}")
def job_status(job_id: int, session: SessionDep, user: PageUser) -> dict[str, Any]:
    """Return the job page's JSON (``GET /api/v1/jobs/{id}``, with the session cookie)."""
    return jobs.job_json(jobs.get_job(session, user, job_id))


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: int, request: Request, session: SessionDep, user: PageUser,
                     csrf: CsrfDep) -> Response:
    """Cancel a queued or running job."""
    await _form(request, csrf)
    job = jobs.get_job(session, user, job_id)
    try:
        jobs.cancel_job(session, user, job)
    except Conflict:
        pass  # already finished: the page shows how
    return _redirect(f"/jobs/{job.id}")


# -- artifacts ----------------------------------------------------------------------------------

@router.get("/artifacts/{artifact_id}")
def artifact_page(artifact_id: int, request: Request, session: SessionDep, user: PageUser,
                  csrf: CsrfDep) -> Response:
    """Show an artifact: its hash, the download (if allowed) and its privacy passport."""
    art = artifacts.get_artifact(session, user, artifact_id)
    try:
        artifacts.can_download(user, art)
        refused = None
    except Forbidden as e:
        refused = e.message
    doc = art.passport or {}
    try:
        from secured_bio.passport import passport_html

        passport_doc = passport_html(doc) if doc else None
    except Exception:  # noqa: BLE001 - the page still shows the passport's fields
        passport_doc = None
    classification = doc.get("classification") if isinstance(doc, dict) else None
    return _render(request, "artifact.html", user, csrf, art=art, refused=refused,
                   passport=doc, passport_doc=passport_doc,
                   classification=classification if isinstance(classification, dict) else {},
                   passport_json=json.dumps(doc, indent=2, default=str))


@router.get("/artifacts/{artifact_id}/download")
def artifact_download(artifact_id: int, session: SessionDep, user: PageUser,
                      request: Request) -> FileResponse:
    """Send the artifact's bytes if the grant allows (audited as the API's download)."""
    art = artifacts.get_artifact(session, user, artifact_id)
    artifacts.can_download(user, art)
    append_event(session, actor=user.username, action="artifact.download",
                 target=f"artifact:{art.id}", details={"sha256": art.sha256, "via": "page"})
    session.commit()
    root = request.app.state.settings.artifacts_dir
    return FileResponse(artifacts.artifact_path(root, art.sha256), media_type=art.media_type,
                        filename=art.name,
                        content_disposition_type="inline" if art.media_type == "image/png"
                        else "attachment")


# -- audit --------------------------------------------------------------------------------------

@router.get("/audit")
def audit_page(request: Request, session: SessionDep, user: PageUser, csrf: CsrfDep
               ) -> Response:
    """Show the audit chain's status and its newest 200 events (admin and committee)."""
    require_role(user, "admin", "committee")
    report = verify_chain(session)
    events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(200)))
    return _render(request, "audit.html", user, csrf, report=report, events=events,
                   as_json=lambda d: json.dumps(d, sort_keys=True, default=str))

