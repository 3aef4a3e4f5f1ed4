"""The hub's GA4GH Beacon v2: federated answers, masked per site, defended against re-id.

The hub holds no variant and no individual.  A Beacon query (``g_variants``: does anybody carry
this allele, how many; ``individuals``: how many people match these phenotype/covariate
filters) becomes a short-lived *beacon query* in the hub's memory (:class:`BeaconBroker`),
which every participating site's agent claims over its outbound connection
(``POST /api/v1/agent/beacon/claim``, a long poll) and answers from its own files
(:mod:`secured_bio.hub.agent.beacon`) with a **masked** vector
(:mod:`secured_bio.privacy.smpc.masked_sum`): the hub adds the answers modulo 2^32 and reads
only the total over the sites.

Counts
    ``g_variants``: the number of individuals who carry the alternate allele (at least one
    copy; a range query: at least one alternate allele of a variant in ``[start, end)``).
    ``individuals``: the number of individuals of the sites' genotyped cohorts who match
    every filter.

Threat model and reveal set
    - The hub (honest but curious) learns, per query, the total count over the sites, which
      sites answered, and the query itself; it does not learn any site's own count (each
      masked answer is uniform to it) as long as the sites do not collude with it.  With two
      sites, either one learns the other's count from a total it is shown; a hub colluding
      with all sites but one learns that one's count (inherent to any sum).
    - ``record`` granularity, to a user with an approved grant for a dataset, adds one slot
      per granted dataset: the hub then learns (and releases) those datasets' counts.
    - The user learns the released answer only: counts below the minimum count are released
      as 0, budgets and optional noise apply (:mod:`secured_bio.privacy.beacon`); a user
      with an approved, unexpired access request covering every Beacon dataset gets exact
      counts.
    - The hub stores, in its audit log, the query, the requested and returned granularity,
      and the *released* answer; never a site's answer, nor an unreleased total.
    - The roster's keys are registered under each site's token; a *malicious* hub could
      hand a site a roster of forged keys or of that site alone (it would then read its
      count): pin the roster out of band to rule that out.  Agents refuse a repeated query
      id (two answers under one id would reveal their difference).  No dropout recovery: a
      site that does not answer in time fails the query (a partial sum would be random).
    - Budgets are counted from the audit log when a query starts; queries of one user
      running at the same moment can pass the daily budget by their number.
    - The broker lives in one hub process: run the Beacon with ``hub serve --workers 1``
      (with several workers an agent's long poll and a user's query may meet different
      processes, and the query times out).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from secured_bio.hub.errors import Conflict, Forbidden, HubError, Invalid, NotFound
from secured_bio.hub.models import (
    AccessRequest,
    AuditEvent,
    Dataset,
    Site,
    User,
    utcnow,
)
from secured_bio.privacy.beacon import BeaconPolicy, BudgetExceeded, check_budget, release_count
from secured_bio.privacy.smpc.masked_sum import MODULUS, unmask_sum

__all__ = ["API_VERSION", "BEACON_ID", "ENTRY_TYPES", "SEX_TERMS", "BeaconBroker",
           "BeaconQuery", "BeaconUnavailable", "SitesUnavailable", "check_single_worker",
           "collections_response", "configuration", "entry_types", "error_response",
           "filtering_terms", "finish_query", "info", "beacon_map", "parse_request",
           "plan_query", "policy_of"]

BEACON_ID = "org.secured-bio.innohub"
API_VERSION = "v2.0.0"
GRANULARITIES = ("boolean", "count", "record")
#: sex as ontology terms (NCIT), on the plink ``sex`` covariate (1 male, 2 female)
SEX_TERMS = {"NCIT:C20197": ("male", 1), "NCIT:C16576": ("female", 2)}
_OPERATORS = ("=", "!", "<", "<=", ">", ">=")
_BASES = re.compile(r"^[ACGTN]+$")
_CONTIG = re.compile(r"^(chr)?[0-9A-Za-z_.]{1,40}$")

ENTRY_TYPES: dict[str, dict[str, Any]] = {
    "genomicVariant": {
        "id": "genomicVariant", "name": "Genomic variant", "path": "g_variants",
        "partOfSpecification": "Beacon v2.0.0",
        "description": "A variant observed in the sites' genotyped cohorts; counts are "
                       "individuals carrying the alternate allele.",
        "ontologyTermForThisType": {"id": "ENSGLOSSARY:0000092", "label": "Variant"},
        "defaultSchema": {"id": "beacon-g_variant-v2.0.0", "name": "Default schema for a "
                          "genomic variation", "referenceToSchemaDefinition":
                          "https://github.com/ga4gh-beacon/beacon-v2/blob/main/models/json/"
                          "beacon-v2-default-model/genomicVariations/defaultSchema.json",
                          "schemaVersion": "v2.0.0"},
        "nonFilteredQueriesAllowed": True,
    },
    "individual": {
        "id": "individual", "name": "Individual", "path": "individuals",
        "partOfSpecification": "Beacon v2.0.0",
        "description": "A genotyped person; filters on sex (NCIT terms) and on the "
                       "phenotype/covariate columns.",
        "ontologyTermForThisType": {"id": "NCIT:C25190", "label": "Person"},
        "defaultSchema": {"id": "beacon-individual-v2.0.0", "name": "Default schema for an "
                          "individual", "referenceToSchemaDefinition":
                          "https://github.com/ga4gh-beacon/beacon-v2/blob/main/models/json/"
                          "beacon-v2-default-model/individuals/defaultSchema.json",
                          "schemaVersion": "v2.0.0"},
        "nonFilteredQueriesAllowed": True,
    },
    "dataset": {
        "id": "dataset", "name": "Dataset", "path": "datasets",
        "partOfSpecification": "Beacon v2.0.0",
        "description": "A site's genotyped dataset (catalogue metadata).",
        "ontologyTermForThisType": {"id": "NCIT:C47824", "label": "Data set"},
        "defaultSchema": {"id": "beacon-dataset-v2.0.0", "name": "Default schema for "
                          "datasets", "referenceToSchemaDefinition":
                          "https://github.com/ga4gh-beacon/beacon-v2/blob/main/models/json/"
                          "beacon-v2-default-model/datasets/defaultSchema.json",
                          "schemaVersion": "v2.0.0"},
        "nonFilteredQueriesAllowed": True,
    },
    "cohort": {
        "id": "cohort", "name": "Cohort", "path": "cohorts",
        "partOfSpecification": "Beacon v2.0.0",
        "description": "The genotyped cohort of a site.",
        "ontologyTermForThisType": {"id": "NCIT:C61512", "label": "Cohort"},
        "defaultSchema": {"id": "beacon-cohort-v2.0.0", "name": "Default schema for "
                          "cohorts", "referenceToSchemaDefinition":
                          "https://github.com/ga4gh-beacon/beacon-v2/blob/main/models/json/"
                          "beacon-v2-default-model/cohorts/defaultSchema.json",
                          "schemaVersion": "v2.0.0"},
        "nonFilteredQueriesAllowed": True,
    },
}
_SCHEMA_OF = {"g_variants": "genomicVariant", "individuals": "individual",
              "datasets": "dataset", "cohorts": "cohort"}


class SitesUnavailable(HubError):
    """A site did not answer a Beacon query in time, or failed it (503)."""

    status = 503


class BeaconUnavailable(HubError):
    """The hub cannot serve Beacon queries (several worker processes: 501)."""

    status = 501


def check_single_worker(settings: Any) -> None:
    """Raise :class:`BeaconUnavailable` when the hub runs several worker processes.

    Queries in flight live in one process's memory (:class:`BeaconBroker`): with several
    workers an agent's long poll and a user's query may meet different processes.
    """
    if int(getattr(settings, "workers", 1) or 1) > 1:
        raise BeaconUnavailable(
            "the Beacon needs a hub with one worker process; this one runs "
            f"{settings.workers}", fix="run 'secured-bio hub serve --workers 1' for the Beacon")


# -- the broker ----------------------------------------------------------------------------------

@dataclass
class _Pending:
    message: dict[str, Any]
    sites: tuple[str, ...]
    delivered: set[str] = field(default_factory=set)
    answers: dict[str, list[int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class BeaconBroker:
    """Beacon queries in flight: handed to the sites' agents, their masked answers summed.

    One per hub process (``app.state.beacon``); thread-safe.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._pending: dict[str, _Pending] = {}

    def run(self, message: dict[str, Any], roster: dict[str, str], *, n_slots: int,
            timeout_s: float) -> list[int]:
        """Hand a query to every site of ``roster`` and return the unmasked slot totals.

        Raises
        ------
        SitesUnavailable
            If a site failed the query or did not answer within ``timeout_s``.
        """
        qid = secrets.token_hex(16)  # fresh per query: masks are never reused
        pending = _Pending(message={**message, "id": qid, "roster": dict(roster),
                                    "n_slots": n_slots}, sites=tuple(sorted(roster)))
        deadline = time.monotonic() + timeout_s
        with self._cv:
            self._pending[qid] = pending
            self._cv.notify_all()
            try:
                while len(pending.answers) < len(pending.sites) and not pending.errors:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
            finally:
                self._pending.pop(qid, None)
        if pending.errors:
            site, why = sorted(pending.errors.items())[0]
            raise SitesUnavailable(f"site {site} could not answer the Beacon query: {why}",
                                   fix="check the query, or ask that site's data steward")
        missing = [s for s in pending.sites if s not in pending.answers]
        if missing:
            raise SitesUnavailable(
                f"site(s) {', '.join(missing)} did not answer the Beacon query within "
                f"{timeout_s:g} s; no partial answer is given (the other sites' answers stay "
                "masked)", fix="try again later; the hub admin can see which agents are down")
        return unmask_sum([pending.answers[s] for s in pending.sites])

    def claim(self, site: str, *, wait_s: float) -> list[dict[str, Any]]:
        """Return the queries this site has not yet been given; wait up to ``wait_s``."""
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._cv:
            while True:
                out = []
                for p in self._pending.values():
                    if site in p.sites and site not in p.delivered:
                        p.delivered.add(site)
                        out.append(p.message)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._cv.wait(remaining)

    def answer(self, site: str, query_id: str, values: list[int] | None,
               error: str | None = None) -> None:
        """Record a site's masked answer (or its error) to a query.

        Raises
        ------
        NotFound
            If the query is unknown or over (timed out).
        Forbidden
            If the site is not part of the query.
        Conflict
            If the site already answered.
        Invalid
            If the answer has the wrong length or values out of range.
        """
        with self._cv:
            p = self._pending.get(query_id)
            if p is None:
                raise NotFound("no such Beacon query in flight (it may have timed out)")
            if site not in p.sites:
                raise Forbidden(f"site {site} is not part of this Beacon query")
            if site in p.answers or site in p.errors:
                raise Conflict(f"site {site} already answered this Beacon query")
            if error is not None:
                p.errors[site] = error[:300]
            else:
                n = int(p.message["n_slots"])
                if values is None or len(values) != n or any(
                        isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MODULUS
                        for v in values):
                    raise Invalid(f"a masked answer is {n} integers in [0, 2^32)")
                p.answers[site] = list(values)
            self._cv.notify_all()


# -- requests ------------------------------------------------------------------------------------

@dataclass
class BeaconQuery:
    """A parsed Beacon request of one entry type."""

    entry_type: str
    granularity: str
    params: dict[str, Any]
    filters: list[dict[str, Any]]
    skip: int = 0
    limit: int = 10
    include: str = "HIT"


def _int(value: Any, name: str) -> int:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str) and "," in value:
        raise Invalid(f"{name}: a single position is supported, got a list",
                      fix="give one 0-based position (bracket queries are not supported)")
    try:
        v = int(value)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{name} must be an integer (0-based position)") from e
    if v < 0 or v > 3_000_000_000:
        raise Invalid(f"{name} is out of range")
    return v


def parse_request(entry_type: str, query: dict[str, Any] | None,
                  body: dict[str, Any] | None) -> BeaconQuery:
    """Read a Beacon request: GET query parameters or a POST request body.

    Raises
    ------
    Invalid
        If the request is malformed (Beacon 400).
    """
    body = body or {}
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object (a Beacon request body)")
    meta = body.get("meta") or {}
    q = body.get("query") or {}
    if not isinstance(meta, dict) or not isinstance(q, dict):
        raise Invalid("meta and query must be JSON objects")
    params: dict[str, Any] = dict(q.get("requestParameters") or {})
    filters: list[Any] = list(q.get("filters") or [])
    granularity = q.get("requestedGranularity") or meta.get("requestedGranularity")
    pagination = q.get("pagination") or {}
    include = q.get("includeResultsetResponses") or "HIT"
    if query:
        query = dict(query)
        granularity = query.pop("requestedGranularity", None) or query.pop(
            "granularity", None) or granularity
        raw_filters = query.pop("filters", None)
        if raw_filters:
            filters += [{"id": f.strip()} for f in str(raw_filters).split(",") if f.strip()]
        pagination = {"skip": query.pop("skip", 0), "limit": query.pop("limit", 10)}
        include = query.pop("includeResultsetResponses", include)
        params.update(query)
    granularity = str(granularity or "boolean")
    if granularity not in GRANULARITIES:
        raise Invalid(f"unknown requestedGranularity {granularity!r}",
                      fix=f"use one of {', '.join(GRANULARITIES)}")
    norm_filters = []
    for f in filters:
        if isinstance(f, str):
            f = {"id": f}
        if not isinstance(f, dict) or not isinstance(f.get("id"), str):
            raise Invalid("a filter is an object with an 'id' (a filtering term)")
        op = f.get("operator")
        if op is not None and op not in _OPERATORS:
            raise Invalid(f"filter {f['id']!r}: unknown operator {op!r}",
                          fix=f"use one of {' '.join(_OPERATORS)}")
        norm_filters.append({k: f[k] for k in ("id", "operator", "value") if k in f})
    try:
        skip, limit = int(pagination.get("skip", 0)), int(pagination.get("limit", 10))
    except (TypeError, ValueError) as e:
        raise Invalid("skip and limit must be integers") from e
    return BeaconQuery(entry_type, granularity, _check_params(entry_type, params),
                       norm_filters, max(skip, 0), max(limit, 0), str(include))


def _check_params(entry_type: str, params: dict[str, Any]) -> dict[str, Any]:
    if entry_type != "g_variants":
        unknown = sorted(params)
        if unknown:
            raise Invalid(f"{entry_type} takes no request parameters, got {unknown}",
                          fix="use filters (see /beacon/v2/filtering_terms)")
        return {}
    allowed = {"referenceName", "start", "end", "referenceBases", "alternateBases",
               "assemblyId", "variantType"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        from secured_bio.errors import did_you_mean

        raise Invalid(f"unknown request parameter(s) {unknown}{did_you_mean(unknown[0], allowed)}",
                      fix=f"g_variants takes {', '.join(sorted(allowed))}")
    out: dict[str, Any] = {}
    ref = str(params.get("referenceName") or "")
    if not _CONTIG.match(ref):
        raise Invalid("g_variants needs referenceName (a chromosome: 1..22, X, Y, MT)")
    out["referenceName"] = ref.removeprefix("chr")
    if "start" not in params:
        raise Invalid("g_variants needs start (0-based position)")
    out["start"] = _int(params["start"], "start")
    if params.get("end") is not None:
        out["end"] = _int(params["end"], "end")
        if out["end"] <= out["start"]:
            raise Invalid("end must be greater than start")
        if out["end"] - out["start"] > 10_000_000:
            raise Invalid("a range query spans at most 10 Mb")
    for key in ("referenceBases", "alternateBases"):
        if params.get(key) is not None:
            bases = str(params[key]).upper()
            if not _BASES.match(bases) or len(bases) > 1000:
                raise Invalid(f"{key} must be bases (A, C, G, T, N)")
            out[key] = bases
    if "end" not in out and "alternateBases" not in out:
        raise Invalid("a sequence query needs alternateBases (or give end for a range query)")
    if params.get("assemblyId") is not None:
        out["assemblyId"] = str(params["assemblyId"])[:40]
    if params.get("variantType") is not None:
        out["variantType"] = str(params["variantType"])[:20]
    return out


# -- policy, grants, budgets ---------------------------------------------------------------------

def policy_of(settings: Any) -> BeaconPolicy:
    """Return the hub's Beacon policy from its settings."""
    return BeaconPolicy(min_count=settings.beacon_min_count,
                        noise_epsilon=settings.beacon_noise_epsilon,
                        queries_per_day=settings.beacon_queries_per_day or None,
                        epsilon_per_day=settings.beacon_epsilon_per_day)


def _beacon_datasets(session: Session) -> list[Dataset]:
    stmt = (select(Dataset).join(Site).where(Dataset.kind == "genotypes",
                                             Site.beacon_key.is_not(None))
            .order_by(Dataset.id))
    return list(session.scalars(stmt))


def granted_datasets(session: Session, user: User | None) -> set[int]:
    """Return the ids of datasets the user holds an approved, unexpired access request for."""
    if user is None:
        return set()
    now = utcnow()
    out: set[int] = set()
    stmt = select(AccessRequest).where(AccessRequest.researcher_id == user.id,
                                       AccessRequest.status == "approved")
    for req in session.scalars(stmt):
        if req.expires_at is None or req.expires_at > now:
            out |= {link.dataset_id for link in req.datasets}
    return out


def _actor(user: User | None, client: str) -> str:
    return user.username if user is not None else f"anonymous@{client}"


def _usage(session: Session, actor: str) -> tuple[int, float]:
    since = utcnow() - dt.timedelta(days=1)
    where = (AuditEvent.action == "beacon.query", AuditEvent.actor == actor,
             AuditEvent.ts >= since)
    n = int(session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0)
    eps = 0.0
    if n:
        for details in session.scalars(select(AuditEvent.details).where(*where)):
            eps += float((details or {}).get("epsilon") or 0.0)
    return n, eps


@dataclass
class _Plan:
    query: BeaconQuery
    actor: str
    roster: dict[str, str]
    slots: list[dict[str, Any]]
    granted_all: bool
    returned: str
    datasets: list[dict[str, Any]]


def plan_query(session: Session, user: User | None, query: BeaconQuery, *,
               policy: BeaconPolicy, anonymous_boolean: bool, client: str = "?") -> _Plan:
    """Check who may ask what, charge nothing yet, and lay out the masked slots.

    Raises
    ------
    Unauthorized, Invalid, TooManyRequests
        No login (unless anonymous boolean queries are allowed), an unknown filter, an
        exhausted budget.
    """
    from secured_bio.hub.errors import TooManyRequests, Unauthorized

    if user is None and not (anonymous_boolean and query.granularity == "boolean"):
        raise Unauthorized("the Beacon answers logged-in users",
                           fix="POST /api/v1/auth/token, then send 'Authorization: Bearer "
                               "<access_token>'")
    actor = _actor(user, client)
    used, eps = _usage(session, actor)
    try:
        check_budget(queries_used=used, epsilon_used=eps, policy=policy, who=actor)
    except BudgetExceeded as e:
        raise TooManyRequests(str(e).split("\n")[0] + f" ({used} queries asked)",
                              fix="wait, or ask the data access committee for access") from e
    datasets = _beacon_datasets(session)
    if not datasets:
        raise SitesUnavailable("no site serves the Beacon yet",
                               fix="start the sites' agents (they register their Beacon key)")
    _check_filters(query, datasets)
    granted = granted_datasets(session, user)
    roster = {d.site.name: str(d.site.beacon_key) for d in datasets}
    slots: list[dict[str, Any]] = [{"kind": "total"}]
    returned = query.granularity
    described = [{"id": d.id, "name": d.name, "site": d.site.name} for d in datasets]
    if query.granularity == "record":
        mine = [d for d in datasets if d.id in granted]
        if mine and query.entry_type == "g_variants":
            slots += [{"kind": "dataset", "site": d.site.name, "dataset": d.name, "id": d.id}
                      for d in mine]
        else:
            returned = "count"  # no grant (or individuals: never records): downgrade
    return _Plan(query, actor, roster, slots,
                 granted_all=bool(datasets) and all(d.id in granted for d in datasets),
                 returned=returned, datasets=described)


def _check_filters(query: BeaconQuery, datasets: list[Dataset]) -> None:
    if not query.filters:
        return
    if query.entry_type != "individuals":
        raise Invalid(f"{query.entry_type} takes no filters here",
                      fix="filter individuals at /beacon/v2/individuals")
    known = set(SEX_TERMS) | _columns(datasets)
    for f in query.filters:
        if f["id"] not in known:
            from secured_bio.errors import did_you_mean

            raise Invalid(f"unknown filtering term {f['id']!r}{did_you_mean(f['id'], known)}",
                          fix="see /beacon/v2/filtering_terms")
        if f["id"] not in SEX_TERMS and ("operator" not in f or "value" not in f):
            raise Invalid(f"filter {f['id']!r} is alphanumeric: give operator and value")


def _columns(datasets: list[Dataset]) -> set[str]:
    cols: set[str] = set()
    for d in datasets:
        meta = d.meta or {}
        cols |= {str(p.get("name")) for p in meta.get("phenotypes") or [] if isinstance(p, dict)}
        cols |= {str(c) for c in meta.get("covariates") or []}
    return cols - {"sex", ""}


def message_of(plan: _Plan) -> dict[str, Any]:
    """Return what the sites are told of a query (no user, no granularity)."""
    return {"entry_type": plan.query.entry_type, "params": plan.query.params,
            "filters": plan.query.filters, "slots": plan.slots}


def finish_query(session: Session, plan: _Plan, totals: list[int], *,
                 policy: BeaconPolicy) -> dict[str, Any]:
    """Release the answer under the policy, audit it, and build the Beacon response."""
    q = plan.query
    exists, count = release_count(totals[0], policy=policy, granted=plan.granted_all)
    epsilon = 0.0 if plan.granted_all or policy.noise_epsilon is None else policy.noise_epsilon
    from secured_bio.hub.services.audit import append_event

    append_event(session, actor=plan.actor, action="beacon.query", target=q.entry_type,
                 details={"params": q.params, "filters": [f["id"] for f in q.filters],
                          "requested": q.granularity, "returned": plan.returned,
                          "exists": exists,
                          "count": count if plan.returned != "boolean" else None,
                          "sites": len(plan.roster), "epsilon": epsilon,
                          "exact": plan.granted_all})
    meta = _meta(q, plan.returned)
    if plan.returned == "boolean":
        return {"meta": meta, "responseSummary": {"exists": exists}, "info": _info_note(plan,
                                                                                         policy)}
    if plan.returned == "count":
        return {"meta": meta, "responseSummary": {"exists": exists, "numTotalResults": count},
                "info": _info_note(plan, policy)}
    result_sets = []
    for slot, n in zip(plan.slots[1:], totals[1:], strict=True):
        hit = n > 0
        if (q.include == "HIT" and not hit) or (q.include == "MISS" and hit) or (
                q.include == "NONE"):
            continue
        record = _variant_record(q.params)
        result_sets.append({
            "id": f"{slot['site']}/{slot['dataset']}", "setType": "dataset", "exists": hit,
            "resultsCount": 1 if hit else 0, "results": [record] if hit else [],
            "info": {"individualsWithVariant": int(n), "datasetId": slot["id"]}})
    return {"meta": meta, "responseSummary": {"exists": exists, "numTotalResults": count},
            "response": {"resultSets": result_sets}, "info": _info_note(plan, policy)}


def _variant_record(params: dict[str, Any]) -> dict[str, Any]:
    ref = params.get("referenceBases", "N")
    alt = params.get("alternateBases", "N")
    start = int(params["start"])
    end = int(params.get("end", start + len(ref)))
    return {
        "variantInternalId": f"{params['referenceName']}:{start + 1}:{ref}:{alt}",
        "variation": {
            "referenceBases": ref, "alternateBases": alt,
            "variantType": "SNP" if len(ref) == len(alt) == 1 else "INDEL",
            "location": {"type": "SequenceLocation",
                         "sequence_id": f"refseq:chr{params['referenceName']}",
                         "interval": {"type": "SequenceInterval",
                                      "start": {"type": "Number", "value": start},
                                      "end": {"type": "Number", "value": end}}}},
    }


def _info_note(plan: _Plan, policy: BeaconPolicy) -> dict[str, Any]:
    note: dict[str, Any] = {"sites": len(plan.roster), "exactCounts": plan.granted_all}
    if not plan.granted_all:
        note["policy"] = {**policy.describe(),
                          "note": f"counts below {policy.min_count} are reported as 0"}
    if plan.returned != plan.query.granularity:
        note["granularityNote"] = ("record granularity needs an approved access request for "
                                   "the dataset (individuals: never records); answered with "
                                   "counts")
    return note


def _meta(q: BeaconQuery | None, returned: str | None, schema: str | None = None
          ) -> dict[str, Any]:
    entity = _SCHEMA_OF.get(q.entry_type if q else "", schema or "genomicVariant")
    meta: dict[str, Any] = {
        "beaconId": BEACON_ID, "apiVersion": API_VERSION,
        "returnedSchemas": [{"entityType": entity,
                             "schema": ENTRY_TYPES[entity]["defaultSchema"]["id"]}],
    }
    if returned is not None:
        meta["returnedGranularity"] = returned
        summary: dict[str, Any] = {
            "apiVersion": API_VERSION, "requestedSchemas": [],
            "pagination": {"skip": q.skip if q else 0, "limit": q.limit if q else 10},
            "requestedGranularity": q.granularity if q else returned}
        if q is not None and q.params:
            summary["requestParameters"] = {entity: q.params}
        if q is not None and q.filters:
            summary["filters"] = [f["id"] for f in q.filters]
        meta["receivedRequestSummary"] = summary
    return meta


def error_response(exc: HubError, entry_type: str | None = None) -> dict[str, Any]:
    """Return a Beacon error response (``beaconErrorResponse``) for a hub error."""
    q = BeaconQuery(entry_type or "g_variants", "boolean", {}, [])
    return {"meta": _meta(q, "boolean"),
            "error": {"errorCode": exc.status, "errorMessage": exc.message},
            **exc.to_json()}


# -- framework endpoints -------------------------------------------------------------------------

def info(base_url: str, policy: BeaconPolicy) -> dict[str, Any]:
    """Return ``/info``."""
    from secured_bio import __version__

    return {"meta": _meta(None, None, "genomicVariant"), "response": {
        "id": BEACON_ID, "name": "secured_bio Innohub Beacon", "apiVersion": API_VERSION,
        "environment": "dev", "version": __version__,
        "description": "A federated Beacon: each site answers for its own data; counts are "
                       "summed over masked answers, so the hub learns only the total.",
        "organization": {"id": "secured-bio", "name": "secured_bio Innohub"},
        "welcomeUrl": base_url.rstrip("/") + "/beacon",
        "info": {"defences": policy.describe()}}}


def configuration() -> dict[str, Any]:
    """Return ``/configuration``."""
    types = {k: {kk: vv for kk, vv in v.items() if kk != "path"}
             for k, v in ENTRY_TYPES.items()}
    return {"meta": _meta(None, None, "genomicVariant"), "response": {
        "$schema": "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/framework/"
                   "json/configuration/beaconConfigurationSchema.json",
        "maturityAttributes": {"productionStatus": "DEV"},
        "securityAttributes": {"defaultGranularity": "boolean",
                               "securityLevels": ["REGISTERED", "CONTROLLED"]},
        "entryTypes": types}}


def beacon_map(base_url: str) -> dict[str, Any]:
    """Return ``/map``."""
    root = base_url.rstrip("/") + "/beacon/v2"
    sets = {v["path"]: {"entryType": k, "rootUrl": f"{root}/{v['path']}"}
            for k, v in ENTRY_TYPES.items()}
    return {"meta": _meta(None, None, "genomicVariant"), "response": {
        "$schema": "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/framework/"
                   "json/configuration/beaconMapSchema.json", "endpointSets": sets}}


def entry_types() -> dict[str, Any]:
    """Return ``/entry_types``."""
    types = {k: {kk: vv for kk, vv in v.items() if kk != "path"}
             for k, v in ENTRY_TYPES.items()}
    return {"meta": _meta(None, None, "genomicVariant"), "response": {"entryTypes": types}}


def filtering_terms(session: Session) -> dict[str, Any]:
    """Return ``/filtering_terms``: sex (NCIT) and the phenotype/covariate columns."""
    terms: list[dict[str, Any]] = [
        {"type": "ontology", "id": tid, "label": label, "scopes": ["individual"]}
        for tid, (label, _code) in SEX_TERMS.items()]
    terms += [{"type": "alphanumeric", "id": c, "label": f"column {c} of the sites' "
               "phenotype/covariate tables", "scopes": ["individual"]}
              for c in sorted(_columns(_beacon_datasets(session)))]
    return {"meta": _meta(None, None, "individual"), "response": {
        "filteringTerms": terms,
        "resources": [{"id": "NCIT", "name": "NCI Thesaurus", "url":
                       "http://purl.obolibrary.org/obo/ncit.owl", "nameSpacePrefix": "NCIT",
                       "iriPrefix": "http://purl.obolibrary.org/obo/NCIT_"}]}}


def collections_response(session: Session, entry_type: str, query: BeaconQuery
                         ) -> dict[str, Any]:
    """Return ``/datasets`` or ``/cohorts``: the Beacon's datasets (catalogue metadata)."""
    rows = _beacon_datasets(session)
    items: list[dict[str, Any]] = []
    for d in rows:
        meta = d.meta or {}
        base = {"id": f"{d.site.name}/{d.name}", "name": d.name,
                "description": d.description}
        if entry_type == "datasets":
            items.append({**base, "dataUseConditions": {"duoDataUse": [
                {"id": c} for c in d.duo]}, "info": {"site": d.site.name,
                                                     "assembly": meta.get("assembly")}})
        else:
            items.append({**base, "cohortType": "study-defined",
                          "cohortSize": int(meta.get("n_samples") or 0),
                          "info": {"site": d.site.name}})
    page = items[query.skip:query.skip + query.limit] if query.limit else items[query.skip:]
    return {"meta": _meta(query, "record"), "responseSummary": {
        "exists": bool(items), "numTotalResults": len(items)},
        "response": {"collections": page}}
