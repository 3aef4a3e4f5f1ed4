"""``secured-bio beacon``: query an Innohub's GA4GH Beacon v2 from the command line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from secured_bio.errors import ConfigError, ProtocolError

__all__ = ["beacon", "parse_variant"]

_VARIANT = re.compile(r"^(?:chr)?([0-9A-Za-z_.]+):([0-9]+):([ACGTNacgtn]+):([ACGTNacgtn]+)$")


def parse_variant(text: str) -> dict[str, Any]:
    """Read ``CHR:POS:REF:ALT`` (POS 1-based, as in a VCF) into Beacon request parameters.

    Examples
    --------
    >>> parse_variant("1:12345:A:G")
    {'referenceName': '1', 'start': 12344, 'referenceBases': 'A', 'alternateBases': 'G'}
    """
    m = _VARIANT.match(text.strip())
    if not m or int(m.group(2)) < 1:
        raise ConfigError("invalid --variant", got=repr(text),
                          expected="CHR:POS:REF:ALT with a 1-based POS, e.g. 1:12345:A:G")
    return {"referenceName": m.group(1), "start": int(m.group(2)) - 1,
            "referenceBases": m.group(3).upper(), "alternateBases": m.group(4).upper()}


@click.group()
def beacon() -> None:
    """Query a GA4GH Beacon v2 (an Innohub's federated Beacon, or any v2 Beacon).

    \b
    secured-bio beacon query --hub URL --token-file F --variant 1:12345:A:G
    """


@beacon.command("query")
@click.option("--hub", "hub_url", required=True, metavar="URL",
              help="The hub's address, e.g. https://hub.example.org (the Beacon is at "
                   "URL/beacon/v2).")
@click.option("--token", default=None, metavar="TOKEN",
              help="A bearer token (POST /api/v1/auth/token). Prefer --token-file: a token "
                   "on the command line is visible to other users of this machine.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File whose first line is the bearer token.")
@click.option("--variant", default=None, metavar="CHR:POS:REF:ALT",
              help="The allele to ask about; POS is 1-based, as in a VCF.")
@click.option("--range", "region", default=None, metavar="CHR:START-END",
              help="A range query instead (1-based, inclusive): anybody carrying an "
                   "alternate allele there?")
@click.option("--granularity", type=click.Choice(["boolean", "count", "record"]),
              default="boolean", show_default=True,
              help="boolean: exists or not; count: how many individuals carry it (counts "
                   "below the hub's minimum are reported as 0); record: the variant per "
                   "dataset, only with an approved access request (else answered as count).")
@click.option("--assembly", default=None, metavar="ID", help="assemblyId, e.g. GRCh38.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the answer.")
def query(hub_url: str, token: str | None, token_file: Path | None, variant: str | None,
          region: str | None, granularity: str, assembly: str | None,
          timeout: float) -> None:
    """Ask the Beacon whether (and how many) individuals carry a variant; print the JSON.

    The request is the Beacon v2 POST form (``/beacon/v2/g_variants``).  The hub hands it to
    every site's agent, sums their masked answers and releases the total under its
    re-identification defences.  Exit code 0 with the Beacon's response; 1 when the hub
    refuses (the Beacon error response is printed on stderr).
    """
    import httpx

    if (variant is None) == (region is None):
        raise ConfigError("give one of --variant or --range",
                          fix="e.g. --variant 1:12345:A:G or --range 1:10000-20000")
    if variant is not None:
        params = parse_variant(variant)
    else:
        m = re.match(r"^(?:chr)?([0-9A-Za-z_.]+):([0-9]+)-([0-9]+)$", str(region).strip())
        if not m or int(m.group(2)) < 1 or int(m.group(3)) < int(m.group(2)):
            raise ConfigError("invalid --range", got=repr(region),
                              expected="CHR:START-END (1-based, inclusive)")
        params = {"referenceName": m.group(1), "start": int(m.group(2)) - 1,
                  "end": int(m.group(3))}
    if assembly:
        params["assemblyId"] = assembly
    if token_file is not None:
        from secured_bio.hub.agent.loop import read_token

        token = read_token(token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"meta": {"apiVersion": "v2.0.0"},
            "query": {"requestParameters": params, "requestedGranularity": granularity}}
    url = hub_url.rstrip("/") + "/beacon/v2/g_variants"
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise ProtocolError("the hub could not be reached", where=url,
                            got=type(e).__name__, fix="check --hub") from e
    try:
        doc = resp.json()
    except ValueError as e:
        raise ProtocolError("the hub did not answer with JSON", where=url,
                            got=f"HTTP {resp.status_code}") from e
    if resp.status_code >= 400:
        click.echo(json.dumps(doc, indent=2), err=True)
        detail = doc.get("detail") if isinstance(doc, dict) else None
        raise ProtocolError("the Beacon refused the query", where=url,
                            got=f"HTTP {resp.status_code}: {detail}",
                            fix=(doc.get("fix") if isinstance(doc, dict) else None)
                            or "see the message above")
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
