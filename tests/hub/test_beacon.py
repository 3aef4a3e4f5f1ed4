"""The hub's GA4GH Beacon v2: federated, masked, defended; validated against the official schemas.

A real demo hub with three site-agent processes answers ``g_variants`` and ``individuals``
queries; every response validates against the Beacon v2 framework schemas copied in
``beacon_schemas/`` (see its PROVENANCE.md); counts equal the carriers counted from
``bcftools query`` on the pooled demo VCFs (above the minimum count); a singleton is never
an exact 1 without a grant; the hub's audit log holds the query and the released answer only.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hub._demo import Api, grant, running_demo

from secured_bio.privacy.beacon import (
    BeaconPolicy,
    BudgetExceeded,
    QueryBudget,
    discrete_laplace,
    release_count,
)
from secured_bio.privacy.smpc.masked_sum import (
    MODULUS,
    generate_keypair,
    mask_vector,
    unmask_sum,
)

SCHEMAS = Path(__file__).with_name("beacon_schemas")
BCFTOOLS = "/usr/bin/bcftools"
SITES = ("site1", "site2", "site3")


# -- schema validation --

def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for path in SCHEMAS.rglob("*.json"):
        doc = json.loads(path.read_text())
        resources.append((path.resolve().as_uri(),
                          Resource.from_contents(doc, default_specification=DRAFT202012)))
    registry = Registry().with_resources(resources)
    uri = (SCHEMAS / "responses" / f"{name}.json").resolve().as_uri()
    return Draft202012Validator({"$ref": uri}, registry=registry)


def validate(doc: Any, name: str) -> None:
    """Assert that ``doc`` validates against the Beacon framework schema ``name``."""
    errors = sorted(_validator(name).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_schemas__reject_a_wrong_document() -> None:
    validate({"meta": {"beaconId": "x", "apiVersion": "v2.0.0", "returnedSchemas": [],
                       "returnedGranularity": "boolean",
                       "receivedRequestSummary": {"apiVersion": "v2.0.0",
                                                  "requestedSchemas": [], "pagination": {},
                                                  "requestedGranularity": "boolean"}},
              "responseSummary": {"exists": True}}, "beaconBooleanResponse")
    bad = list(_validator("beaconCountResponse").iter_errors(
        {"meta": {}, "responseSummary": {"exists": True}}))
    assert bad  # meta fields and numTotalResults missing


# -- the generic primitives --

def test_masked_sum__masks_cancel_and_change_with_the_query_id() -> None:
    keys = {n: generate_keypair() for n in SITES}
    roster = {n: pub for n, (_sk, pub) in keys.items()}
    xs = {"site1": [3, 0, 7], "site2": [0, 1, 0], "site3": [1, 0, 0]}

    def masked(qid: str) -> dict[str, list[int]]:
        return {n: mask_vector(xs[n], me=n, private_key=keys[n][0], roster=roster,
                               query_id=qid) for n in SITES}

    a, b = masked("q1"), masked("q2")
    assert unmask_sum(list(a.values())) == [4, 1, 7] == unmask_sum(list(b.values()))
    for n in SITES:
        assert a[n] != xs[n] and a[n] != b[n]  # each answer is masked, fresh per query
        assert all(0 <= v < MODULUS for v in a[n])
    # a partial sum does not unmask
    assert unmask_sum([a["site1"], a["site2"]]) != [3, 1, 7]
    # with a single party the "mask" is empty: the hub learns that party's value
    solo = {"site1": roster["site1"]}
    assert mask_vector([5], me="site1", private_key=keys["site1"][0], roster=solo,
                       query_id="q") == [5]


def test_release_count__minimum_count_noise_and_budgets() -> None:
    p = BeaconPolicy()
    assert release_count(0, policy=p, granted=False) == (False, 0)
    for c in range(1, 5):  # a singleton (or any count under 5) is never released as such
        assert release_count(c, policy=p, granted=False) == (False, 0)
    assert release_count(5, policy=p, granted=False) == (True, 5)
    assert release_count(1, policy=p, granted=True) == (True, 1)
    draws = np.array([discrete_laplace(1.0) for _ in range(4000)])
    assert abs(draws.mean()) < 0.15 and 1.5 < draws.var() < 2.3  # 2q/(1-q)^2 = 1.84
    noisy = BeaconPolicy(min_count=1, noise_epsilon=1.0, epsilon_per_day=2.0,
                         queries_per_day=None)
    b = QueryBudget(noisy)
    b.spend()
    b.spend()
    with pytest.raises(BudgetExceeded, match="privacy budget"):
        b.spend()
    b2 = QueryBudget(BeaconPolicy(queries_per_day=1))
    b2.spend()
    assert not b2.allowed()


def test_site_answers__masked_and_summing_to_the_pooled_count(tmp_path: Path) -> None:
    """What leaves a site for a query is its masked vector; only the sum is the count."""
    from hub._demo import _sites

    from secured_bio.hub.agent.beacon import BeaconKey, answer_query
    from secured_bio.hub.agent.discover import discover_datasets

    root = _sites()
    counts = _pooled_counts(root)
    key = next(k for k, c in counts.items() if 5 <= c < 360)
    keys = {s: BeaconKey.load_or_create(tmp_path / s) for s in SITES}
    query = {"id": "q-1", "entry_type": "g_variants", "params": _params(key), "filters": [],
             "slots": [{"kind": "total"}], "roster": {s: k.public for s, k in keys.items()}}
    answers = {}
    for s in SITES:
        datasets = {d.name: d for d in discover_datasets(root / s)}
        answers[s] = answer_query(query, datasets, me=s, key=keys[s])
        assert answers[s] != [counts_at(root, s, key)]  # masked
    assert unmask_sum(list(answers.values())) == [counts[key]]
    assert (tmp_path / "site1" / "beacon" / "x25519.key").stat().st_mode & 0o077 == 0


def counts_at(root: Path, site: str, key: str) -> int:
    """Carriers of ``key`` at one site (bcftools)."""
    g, keys = _carriers([root / site / "genomics" / f"{site}.vcf.gz"])
    return int(g[:, keys.index(key)].sum())


# -- the attack --

def _carriers(vcfs: list[Path]) -> tuple[np.ndarray, list[str]]:
    """People x variants carrier indicators and variant keys, from ``bcftools query``."""
    blocks, keys = [], None
    for vcf in vcfs:
        out = subprocess.run([BCFTOOLS, "query", "-f", "%CHROM:%POS:%REF:%ALT[\t%GT]\n",
                              str(vcf)], check=True, capture_output=True, text=True).stdout
        rows = {}
        for line in out.splitlines():
            key, *gts = line.split("\t")
            rows[key] = np.array([any(a not in ("0", ".") for a in g.replace("|", "/").split("/"))
                                  for g in gts], dtype=np.int8)
        keys = list(rows) if keys is None else keys
        blocks.append(np.stack([rows[k] for k in keys], axis=1))
    assert keys is not None
    return np.concatenate(blocks, axis=0), keys


def _demo_vcfs(root: Path) -> list[Path]:
    return [root / s / "genomics" / f"{s}.vcf.gz" for s in SITES]


def test_attack__default_defences_keep_power_low_on_the_demo_cohort() -> None:
    from hub._demo import _sites

    from secured_bio.privacy.assess.beacon_attack import membership_power

    g, _keys = _carriers(_demo_vcfs(_sites()))
    perm = np.random.default_rng(0).permutation(g.shape[0])
    third = g.shape[0] // 3
    members, others, ref = (g[perm[:third]], g[perm[third:2 * third]], g[perm[2 * third:]])
    counts = members.sum(axis=0)
    ref_af = 1 - np.sqrt(1 - np.clip((ref.sum(axis=0) + 0.5) / (len(ref) + 1), 0, 0.9999))
    results = {}
    for name, policy in {"none": BeaconPolicy(min_count=1, queries_per_day=None),
                         "defaults": BeaconPolicy()}.items():
        def make_oracle(policy: BeaconPolicy = policy) -> Any:
            budget = QueryBudget(policy)

            def oracle(v: int) -> bool | None:
                if not budget.allowed():
                    return None
                budget.spend()
                return release_count(int(counts[v]), policy=policy, granted=False)[0]
            return oracle

        results[name] = membership_power(members, others, ref_af, make_oracle,
                                          n_beacon=third, n_queries=1000, mode="boolean")
    assert results["defaults"]["answered"] == 1000
    assert results["defaults"]["power"] <= 0.1, results
    assert results["defaults"]["fpr"] <= 0.05


# -- the real hub --

def _pooled_counts(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for vcf in _demo_vcfs(root):  # per site: the sites' variant lists may differ
        g, keys = _carriers([vcf])
        for k, c in zip(keys, g.sum(axis=0), strict=True):
            counts[k] = counts.get(k, 0) + int(c)
    return counts


def _params(key: str) -> dict[str, Any]:
    chrom, pos, ref, alt = key.split(":")
    return {"referenceName": chrom, "start": int(pos) - 1, "referenceBases": ref,
            "alternateBases": alt}


SINGLETON = "22:50000001:A:G"  # added to site3: one carrier in the pooled cohort
ABSENT = "22:50000002:C:T"     # added to site3: a record nobody carries


def _add_rare_records(vcf: Path) -> None:
    """Append a singleton and a no-carrier record to a site's VCF (re-bgzipped, indexed)."""
    import gzip

    import pysam

    lines = gzip.open(vcf, "rt").read().splitlines()
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    n = len(header[-1].split("\t")) - 9
    if not any(h.startswith("##contig=<ID=22") for h in header):
        header.insert(len(header) - 1, "##contig=<ID=22>")
    for key, gts in ((SINGLETON, ["0/1"] + ["0/0"] * (n - 1)), (ABSENT, ["0/0"] * n)):
        chrom, pos, ref, alt = key.split(":")
        body.append("\t".join([chrom, pos, key, ref, alt, ".", "PASS", ".", "GT", *gts]))
    plain = vcf.with_suffix("")
    plain.write_text("\n".join(header + body) + "\n")
    vcf.unlink()
    vcf.with_name(vcf.name + ".tbi").unlink()
    pysam.tabix_compress(str(plain), str(vcf), force=True)
    pysam.tabix_index(str(vcf), preset="vcf", force=True)
    plain.unlink()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A demo hub whose site3 also holds a singleton and a no-carrier record."""
    import shutil

    from hub._demo import PASSWORD, _free_port, _sites

    from secured_bio.hub.demo import start_demo

    tmp = tmp_path_factory.mktemp("beacon")
    data_dir = tmp / "demo"
    shutil.copytree(_sites(), data_dir / "sites")
    _add_rare_records(data_dir / "sites" / "site3" / "genomics" / "site3.vcf.gz")
    d = start_demo(port=_free_port(), data_dir=data_dir, db=f"sqlite:///{tmp}/hub.db",
                   password=PASSWORD, poll_s=0.3, say=lambda _m: None)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture()
def as_user(demo: Any) -> Iterator[Any]:
    """Log a demo user in (``as_user("researcher")``); the clients are closed afterwards."""
    apis: list[Api] = []

    def make(user: str) -> Api:
        apis.append(Api(demo.url, user))
        return apis[-1]

    yield make
    for a in apis:
        a.close()


def _get(api: Api, path: str, **params: Any) -> Any:
    r = api.http.get(path, params=params)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def test_beacon__framework_endpoints_validate(demo: Any, as_user: Any) -> None:
    api = as_user("researcher")
    for path, schema in [("/beacon/v2/", "beaconInfoResponse"),
                         ("/beacon/v2/info", "beaconInfoResponse"),
                         ("/beacon/v2/configuration", "beaconConfigurationResponse"),
                         ("/beacon/v2/map", "beaconMapResponse"),
                         ("/beacon/v2/entry_types", "beaconEntryTypesResponse"),
                         ("/beacon/v2/filtering_terms", "beaconFilteringTermsResponse"),
                         ("/beacon/v2/datasets", "beaconCollectionsResponse"),
                         ("/beacon/v2/cohorts", "beaconCollectionsResponse")]:
        validate(_get(api, path), schema)
    terms = {t["id"] for t in _get(api, "/beacon/v2/filtering_terms")["response"][
        "filteringTerms"]}
    assert {"NCIT:C20197", "NCIT:C16576", "age"} <= terms
    cohorts = _get(api, "/beacon/v2/cohorts")["response"]["collections"]
    assert len(cohorts) == 3 and all(c["cohortSize"] == 120 for c in cohorts)


def test_beacon__g_variants_counts_equal_bcftools_and_hide_singletons(demo: Any,
                                                                       as_user: Any) -> None:
    import time

    counts = _pooled_counts(demo.data_dir / "sites")
    common = [k for k, c in counts.items() if 5 <= c < 360][:3]
    singleton, absent = SINGLETON, ABSENT
    assert counts[singleton] == 1 and counts[absent] == 0
    api = as_user("researcher")
    for key in common:
        t0 = time.monotonic()
        boolean = _get(api, "/beacon/v2/g_variants", **_params(key))
        assert time.monotonic() - t0 < 2.0  # three sites answer within the demo's polling
        validate(boolean, "beaconBooleanResponse")
        assert boolean["responseSummary"] == {"exists": True}
        count = _get(api, "/beacon/v2/g_variants", requestedGranularity="count",
                     **_params(key))
        validate(count, "beaconCountResponse")
        assert count["responseSummary"] == {"exists": True, "numTotalResults": counts[key]}
    for key in (singleton, absent, "1:1:A:T"):
        for granularity in ("boolean", "count"):
            doc = _get(api, "/beacon/v2/g_variants", requestedGranularity=granularity,
                       **_params(key))
            validate(doc, "beaconCountResponse" if granularity == "count"
                     else "beaconBooleanResponse")
            assert doc["responseSummary"]["exists"] is False
            assert doc["responseSummary"].get("numTotalResults", 0) == 0
    # the POST form gives the same answer
    r = api.http.post("/beacon/v2/g_variants", json={
        "meta": {"apiVersion": "v2.0.0"},
        "query": {"requestParameters": _params(common[0]), "requestedGranularity": "count"}})
    assert r.status_code == 200 and r.json()["responseSummary"]["numTotalResults"] == counts[
        common[0]]
    # record without a grant: answered as counts, and said so
    rec = _get(api, "/beacon/v2/g_variants", requestedGranularity="record",
               **_params(common[0]))
    validate(rec, "beaconCountResponse")
    assert rec["meta"]["returnedGranularity"] == "count"
    # a range query: individuals with any alternate allele in [start, end)
    chrom, pos = common[0].split(":")[:2]
    ranged = _get(api, "/beacon/v2/g_variants", requestedGranularity="count",
                  referenceName=chrom, start=int(pos) - 1, end=int(pos))
    assert ranged["responseSummary"]["numTotalResults"] >= counts[common[0]]
    # malformed and anonymous queries get Beacon error responses
    bad = api.http.get("/beacon/v2/g_variants", params={"referenceName": "1"})
    assert bad.status_code == 422
    validate(bad.json(), "beaconErrorResponse")
    anon = api.http.get("/beacon/v2/g_variants", params=_params(common[0]),
                        headers={"Authorization": ""})
    assert anon.status_code == 401
    validate(anon.json(), "beaconErrorResponse")


def test_beacon__individuals_filters(demo: Any, as_user: Any) -> None:
    import csv

    males = age50 = 0
    for s in SITES:
        with open(demo.data_dir / "sites" / s / "genomics" / "covar.tsv") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                males += row["sex"] == "1"
                age50 += row["sex"] == "1" and row["age"] not in ("", "NA") and float(
                    row["age"]) >= 50
    api = as_user("researcher")
    doc = _get(api, "/beacon/v2/individuals", filters="NCIT:C20197",
               requestedGranularity="count")
    validate(doc, "beaconCountResponse")
    assert doc["responseSummary"]["numTotalResults"] == males
    r = api.http.post("/beacon/v2/individuals", json={"query": {
        "filters": [{"id": "NCIT:C20197"}, {"id": "age", "operator": ">=", "value": "50"}],
        "requestedGranularity": "count"}})
    assert r.status_code == 200, r.text
    assert r.json()["responseSummary"]["numTotalResults"] == age50
    unknown = api.http.get("/beacon/v2/individuals", params={"filters": "NCIT:C9999"})
    assert unknown.status_code == 422 and "filtering term" in unknown.json()["detail"]


def test_beacon__record_and_exact_counts_with_a_grant(demo: Any, as_user: Any) -> None:
    counts = _pooled_counts(demo.data_dir / "sites")
    singleton = SINGLETON
    assert counts[singleton] == 1
    researcher, committee = as_user("researcher"), as_user("committee")
    geno = [d["id"] for d in researcher.get("/api/v1/datasets") if d["kind"] == "genotypes"]
    grant(researcher, committee, geno, ["gwas_secure"])
    rec = _get(researcher, "/beacon/v2/g_variants", requestedGranularity="record",
               **_params(singleton))
    validate(rec, "beaconResultsetsResponse")
    assert rec["meta"]["returnedGranularity"] == "record"
    assert rec["responseSummary"] == {"exists": True, "numTotalResults": 1}
    [hit] = rec["response"]["resultSets"]  # HIT: the one dataset holding the carrier
    assert hit["info"]["individualsWithVariant"] == 1
    assert hit["results"][0]["variantInternalId"] == singleton
    text = json.dumps(rec)
    ids = (demo.data_dir / "sites" / "ids.txt").read_text().split()
    assert not [i for i in ids if i in text]  # never an individual's ID


def test_beacon__budget_exhaustion_and_audit(demo: Any, as_user: Any) -> None:
    from sqlalchemy import select

    from secured_bio.hub.models import AuditEvent, Site

    app = demo.server.config.app
    user = as_user("steward-site2")
    counts = _pooled_counts(demo.data_dir / "sites")
    key = next(k for k, c in counts.items() if c >= 5)
    app.state.settings.beacon_queries_per_day = 2
    try:
        for _ in range(2):
            _get(user, "/beacon/v2/g_variants", **_params(key))
        r = user.http.get("/beacon/v2/g_variants", params=_params(key))
        assert r.status_code == 429 and "budget" in r.json()["detail"]
        validate(r.json(), "beaconErrorResponse")
    finally:
        app.state.settings.beacon_queries_per_day = 1000
    with app.state.sessions() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "beacon.query")))
        keys_ = [site.beacon_key for site in s.scalars(select(Site))]
    assert events and all(set(e.details) == {"params", "filters", "requested", "returned",
                                             "exists", "count", "sites", "epsilon", "exact"}
                          for e in events)
    assert len([e for e in events if e.actor == "steward-site2"]) == 2  # refused: not counted
    assert all(k and len(k) == 44 for k in keys_)


def test_beacon__attack_through_the_hub(demo: Any, as_user: Any) -> None:
    """A small run of the attack over HTTP: the same answers as the in-process oracle."""
    from secured_bio.privacy.assess.beacon_attack import membership_power

    root = demo.data_dir / "sites"
    g, keys = _carriers(_demo_vcfs(root))
    freq = g.mean(axis=0)
    ref_af = 1 - np.sqrt(1 - np.clip(freq, 0, 0.9999))
    rng = np.random.default_rng(1)  # simulated non-members: carriers drawn at the frequency
    outsiders = (rng.random((4, g.shape[1])) < freq).astype(np.int8)
    api = as_user("steward-site3")
    cache: dict[int, int] = {}

    def make_oracle() -> Any:
        def oracle(v: int) -> int:
            if v not in cache:
                doc = _get(api, "/beacon/v2/g_variants", requestedGranularity="count",
                           **_params(keys[v]))
                cache[v] = doc["responseSummary"]["numTotalResults"]
            return cache[v]
        return oracle

    r = membership_power(g[:4], outsiders, ref_af, make_oracle, n_beacon=g.shape[0],
                         n_queries=10, mode="count")
    assert r["answered"] == 10 and r["targets"] == [4, 4]
    policy = BeaconPolicy()
    for v, c in cache.items():  # the hub released what the in-process path releases
        assert c == release_count(int(g[:, v].sum()), policy=policy, granted=False)[1]


def test_beacon__cli_and_page(demo: Any, as_user: Any, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from secured_bio.cli import main as cli_main

    counts = _pooled_counts(demo.data_dir / "sites")
    key = next(k for k, c in counts.items() if 5 <= c < 360)
    api = as_user("admin")
    token = tmp_path / "token"
    token.write_text(api.http.headers["Authorization"].removeprefix("Bearer ") + "\n")
    code = cli_main(["beacon", "query", "--hub", demo.url, "--token-file", str(token),
                     "--variant", key, "--granularity", "count"])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    validate(doc, "beaconCountResponse")
    assert doc["responseSummary"]["numTotalResults"] == counts[key]
    r = api.http.get("/beacon", headers={"Accept": "text/html", "Authorization": ""},
                     follow_redirects=False)
    assert r.status_code in (302, 303, 307) and "/login" in r.headers["location"]
    # the page's search form, as a browser uses it (session cookie)
    import re

    import httpx
    from hub._demo import PASSWORD

    with httpx.Client(base_url=demo.url, timeout=60) as web:
        page = web.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        r = web.post("/login", data={"username": "researcher", "password": PASSWORD,
                                     "csrf_token": csrf.group(1), "next": "/"})
        assert r.status_code == 303, r.text
        html = web.get("/beacon", params={"variant": key, "granularity": "count"}).text
        assert 'href="/beacon"' in html and 'name="variant"' in html
        assert f"{counts[key]} individuals" in html
        bad = web.get("/beacon", params={"variant": "not-a-variant"}).text
        assert "invalid --variant" in bad or "CHR:POS:REF:ALT" in bad


def test_beacon__both_databases(tmp_path: Path, db_url: str) -> None:
    with running_demo(tmp_path, db_url) as d:
        engine = d.server.config.app.state.engine  # type: ignore[attr-defined]
        counts = _pooled_counts(d.data_dir / "sites")
        key = next(k for k, c in counts.items() if 5 <= c < 360)
        api = Api(d.url, "researcher")
        try:
            doc = _get(api, "/beacon/v2/g_variants", requestedGranularity="count",
                       **_params(key))
        finally:
            api.close()
        validate(doc, "beaconCountResponse")
        assert doc["responseSummary"]["numTotalResults"] == counts[key]
    engine.dispose()  # the demo leaves its pool open (PostgreSQL connections)


def test_beacon__several_workers_refuse_clearly(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from hub._hub import hub_settings

    from secured_bio.hub.app import create_app

    settings = hub_settings(tmp_path, f"sqlite:///{tmp_path}/hub.db")
    settings.workers = 2
    app = create_app(settings)
    try:
        with TestClient(app) as c:
            r = c.get("/beacon/v2/g_variants", params=_params("1:100:A:G"))
            assert r.status_code == 501 and "--workers 1" in r.json()["fix"]
            validate(r.json(), "beaconErrorResponse")
            assert c.get("/beacon/v2/info").status_code == 200
    finally:
        app.state.engine.dispose()
