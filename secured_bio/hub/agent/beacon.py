"""The site agent's Beacon: answer the hub's Beacon queries from local files, masked.

A thread beside the task loop long-polls the hub for Beacon queries
(``POST /api/v1/agent/beacon/claim``), computes this site's counts for each slot of the query
and sends them masked (:func:`secured_bio.privacy.smpc.masked_sum.mask_vector`), so the hub
reads only the sum over sites.  The X25519 key lives in ``STATE/beacon/x25519.key`` (0600).

Counts, per genotypes dataset of the site:

- ``g_variants`` with ``alternateBases`` (a sequence query): individuals carrying that allele
  at ``start`` (0-based; the VCF's POS - 1) with matching ``referenceBases`` when given;
- ``g_variants`` with ``end`` (a range query): individuals carrying at least one alternate
  allele (``alternateBases`` when given) of a variant starting in ``[start, end)``;
- ``individuals``: genotyped individuals whose covariate/phenotype rows match every filter
  (sex as NCIT terms on the plink ``sex`` column: 1 male, 2 female; alphanumeric filters
  ``column operator value``).

Only the masked vector leaves the site; an error is reported as a message that names the
problem, never values.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
from pathlib import Path
from typing import Any

from secured_bio.hub.agent.discover import LocalDataset
from secured_bio.privacy.smpc.masked_sum import generate_keypair, mask_vector, public_key_of

__all__ = ["BeaconKey", "answer_query", "count_carriers", "count_individuals",
           "serve_beacon"]

log = logging.getLogger(__name__)

_SEX = {"NCIT:C20197": 1.0, "NCIT:C16576": 2.0}


class BeaconKey:
    """The site's X25519 key pair for masked Beacon answers (created on first use)."""

    def __init__(self, private: str) -> None:
        self.private = private
        self.public = public_key_of(private)

    @classmethod
    def load_or_create(cls, state_dir: Path) -> BeaconKey:
        """Read ``STATE/beacon/x25519.key``, creating it (0600) when missing."""
        folder = Path(state_dir) / "beacon"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "x25519.key"
        if not path.exists():
            private, _public = generate_keypair()
            tmp = folder / f".x25519.key.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(private + "\n")
            os.replace(tmp, path)
        return cls(path.read_text(encoding="utf-8").strip())


def _contig(vf: Any, name: str) -> str | None:
    contigs = set(vf.header.contigs)
    for c in (name, f"chr{name}", name.removeprefix("chr")):
        if c in contigs:
            return c
    return None


def count_carriers(vcf: Path, params: dict[str, Any]) -> int:
    """Return the number of individuals of one VCF carrying the queried allele(s)."""
    import pysam

    start = int(params["start"])
    end = int(params.get("end", start + 1))
    ref, alt = params.get("referenceBases"), params.get("alternateBases")
    ranged = "end" in params
    carriers: set[int] = set()
    with pysam.VariantFile(str(vcf)) as vf:
        contig = _contig(vf, str(params["referenceName"]))
        if contig is None:
            return 0
        for rec in vf.fetch(contig, start, end):
            if rec.start < start or rec.start >= end or (not ranged and rec.start != start):
                continue
            if ref and ref != "N" * len(ref) and rec.ref != ref:
                continue
            alts = rec.alts or ()
            wanted = {i + 1 for i, a in enumerate(alts) if alt is None or a == alt}
            if not wanted:
                continue
            for k, sample in enumerate(rec.samples.values()):
                gt = sample.get("GT") or ()
                if any(a in wanted for a in gt if a is not None):
                    carriers.add(k)
    return len(carriers)


def _table(path: Path | None) -> dict[str, dict[str, str]]:
    if path is None or not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if not header:
            return {}
        header = [h.lstrip("#") for h in header]
        iid = header.index("IID") if "IID" in header else 0
        return {row[iid]: dict(zip(header, row, strict=False)) for row in reader if row}


def _matches(row: dict[str, str], f: dict[str, Any]) -> bool:
    fid = f["id"]
    if fid in _SEX:
        raw, op, want = row.get("sex"), "=", str(_SEX[fid])
    else:
        raw, op, want = row.get(fid), str(f.get("operator", "=")), str(f.get("value", ""))
    if raw is None or raw in ("", "NA", "nan", "-9"):
        return False
    try:
        a, b = float(raw), float(want)
    except ValueError:
        return (raw == want) if op == "=" else (raw != want) if op == "!" else False
    return {"=": a == b, "!": a != b, "<": a < b, "<=": a <= b, ">": a > b,
            ">=": a >= b}.get(op, False)


def count_individuals(ds: LocalDataset, filters: list[dict[str, Any]]) -> int:
    """Return the number of genotyped individuals of one dataset matching every filter."""
    import pysam

    with pysam.VariantFile(str(ds.file("genotypes"))) as vf:
        samples = list(vf.header.samples)
    rows: dict[str, dict[str, str]] = {s: {} for s in samples}
    for role in ("covar", "pheno"):
        table = _table(ds.file(role) if ds.has(role) else None)
        for s in samples:
            rows[s].update(table.get(s, {}))
    return sum(all(_matches(rows[s], f) for f in filters) for s in samples)


def answer_query(query: dict[str, Any], datasets: dict[str, LocalDataset], *, me: str,
                 key: BeaconKey) -> list[int]:
    """Return this site's masked answer vector for one Beacon query."""
    genotyped = [d for d in datasets.values() if d.kind == "genotypes"]

    def count(ds: LocalDataset) -> int:
        if query["entry_type"] == "g_variants":
            return count_carriers(ds.file("genotypes"), query["params"])
        if query["entry_type"] == "individuals":
            return count_individuals(ds, list(query.get("filters") or []))
        raise ValueError(f"unknown Beacon entry type {query['entry_type']!r}")

    per_ds = {d.name: count(d) for d in genotyped}
    values = []
    for slot in query["slots"]:
        if slot.get("kind") == "total":
            values.append(sum(per_ds.values()))
        elif slot.get("site") == me:
            values.append(per_ds.get(str(slot.get("dataset")), 0))
        else:
            values.append(0)
    return mask_vector(values, me=me, private_key=key.private, roster=query["roster"],
                       query_id=str(query["id"]))


def serve_beacon(hub: Any, me: str, key: BeaconKey, datasets: dict[str, LocalDataset],
                 stop: threading.Event, *, wait_s: float = 10.0) -> None:
    """Answer the hub's Beacon queries until ``stop`` is set (run it in a thread)."""
    from collections import deque

    from secured_bio.hub.agent.client import HubError

    # a query id answered twice would give the hub the difference of two answers: refuse
    seen: deque[str] = deque(maxlen=100_000)
    seen_set: set[str] = set()
    while not stop.is_set():
        try:
            queries = hub.beacon_claim(wait_s=wait_s)
        except HubError as e:
            if e.status_code in (401, 403, 404):  # an older hub, or a revoked token
                log.warning("beacon: the hub does not serve this site's Beacon: %s", e)
                return
            log.warning("beacon: claiming queries failed: %s", e)
            stop.wait(2.0)
            continue
        for q in queries:
            qid = str(q.get("id"))
            if qid in seen_set:
                log.warning("beacon: the hub repeated a query id; refused")
                continue
            if len(seen) == seen.maxlen:
                seen_set.discard(seen[0])
            seen.append(qid)
            seen_set.add(qid)
            try:
                values = answer_query(q, datasets, me=me, key=key)
                hub.beacon_answer(q["id"], values=values)
            except HubError as e:
                log.warning("beacon: answering query failed: %s", e)
            except Exception as e:  # report and go on; no repr (it may hold data)
                log.exception("beacon: query failed")
                try:
                    hub.beacon_answer(q.get("id"), error=f"{type(e).__name__} at the site")
                except HubError:
                    pass
