"""``secured-bio hub agent``: the click command of the site agent (added to the ``hub`` group)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["agent"]


@click.command("agent")
@click.option("--hub", "hub_url", required=True, metavar="URL",
              help="The hub's address, e.g. https://hub.example.org (outbound only).")
@click.option("--site", required=True, metavar="NAME",
              help="This site's name (also its SMPC certificate's name).")
@click.option("--token-file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File whose first line is the site token (from the hub admin).")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The site's data folder with datasets.yaml.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the SMPC key pair and task work folders "
                   "[default: DATA/.secured-bio-agent].")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), default=2.0,
              show_default=True, help="Seconds between two claims when the hub has no task.")
@click.option("--once", is_flag=True, help="Stop when the hub has no task left.")
def agent(hub_url: str, site: str, token_file: Path, data_dir: Path, state_dir: Path | None,
          poll_s: float, once: bool) -> None:
    """Run the site agent: register DATA's datasets, then run the hub's jobs here.

    The agent connects out to the hub, runs each job with the secured-bio CLI on the
    site's own files and uploads only the job's releases (summary statistics, anonymized
    or synthetic tables, reports); the catalogue gets aggregate metadata only.

    \b
      secured-bio hub agent --hub https://hub.example.org --site site1 \\
          --token-file site1.token --data /data/site1
    """
    from secured_bio.hub.agent.loop import run_agent

    n = run_agent(hub_url, site, token_file, data_dir, state_dir=state_dir, poll_s=poll_s,
                  once=once)
    click.echo(f"site agent {site}: {n} task(s) served", err=True)
