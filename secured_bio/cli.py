"""The ``secured-bio`` command.

Exit codes, one rule for every command (the error's class decides, see
:mod:`secured_bio.errors`): 0 success; 1 the command line is valid but the inputs or the run
failed (a file missing, a folder where a file belongs, unreadable, truncated or corrupt
input, data that violates its spec, a failed protocol or privacy check); 2 the command line
is wrong (unknown command, option, pilot, data kind or config key, an invalid option value,
a column named on the command line that the table lacks).  Errors are one clear message on
stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from secured_bio.errors import SecuredBioError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Command groups that live beside their domain module, loaded only when used or listed:
#: ``name -> "module:attribute"``. A group whose module is absent is not offered.
LAZY_GROUPS = {
    "genomics": "secured_bio.genomics.cli:genomics",
    "gwas": "secured_bio.genomics.gwas_cli:gwas",
    "imaging": "secured_bio.imaging.cli:imaging",
    "fl": "secured_bio.privacy.federated.cli:fl",
    "anonymize": "secured_bio.privacy.anonymize.cli:anonymize",
    "assess": "secured_bio.privacy.assess.cli:assess",
    "telemetry": "secured_bio.telemetry.cli:telemetry",
    "synth": "secured_bio.privacy.synthetic.cli:synth",
    "education": "secured_bio.education.cli:education",
    "smpc": "secured_bio.privacy.smpc.cli:smpc",
    "hub": "secured_bio.hub.cli:hub",
    "beacon": "secured_bio.hub.beacon_cli:beacon",
}


def _module_exists(target: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(target.partition(":")[0]) is not None
    except ModuleNotFoundError:  # the parent package is absent
        return False


class _LazyGroup(click.Group):
    """A click group whose domain sub-groups are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name, target in LAZY_GROUPS.items() if _module_exists(target)]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_GROUPS and cmd_name not in self.commands:
            import importlib

            module, _, attr = LAZY_GROUPS[cmd_name].partition(":")
            try:
                mod = importlib.import_module(module)
            except ModuleNotFoundError as e:
                if not _module_exists(LAZY_GROUPS[cmd_name]) and e.name and module.startswith(
                    e.name
                ):
                    return None
                raise
            self.add_command(getattr(mod, attr), cmd_name)
        return super().get_command(ctx, cmd_name)


def _stderr(message: str, style: str = "bold red") -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(escape(message), style=style)


EXIT_CODES_EPILOG = """\b
Exit codes (every command):
  0  success
  1  the inputs or the run failed: a file missing, a folder given for a file, unreadable,
     truncated or corrupt input, data that violates its spec, a failed protocol or
     privacy check; fix the data or the environment
  2  the command line is wrong: unknown command, option, pilot, data kind or config key,
     an invalid option value, a column named on the command line that the table lacks;
     fix the command
"""


@click.group(cls=_LazyGroup, context_settings=CONTEXT_SETTINGS, epilog=EXIT_CODES_EPILOG)
@click.version_option(package_name="secured-bio", prog_name="secured-bio")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option(
    "--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Also log to this file."
)
@click.option("--debug", is_flag=True, help="Show the full traceback on errors (may show data).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_file: Path | None, debug: bool) -> None:
    """secured_bio: analyse health data across sites without moving or exposing it.

    \b
    Start with:
      secured-bio pilots list                      the pilots and what they can do
      secured-bio pilots run NAME --out DIR        run a pilot end to end on demo data
      secured-bio validate KIND PATH               check an input file against its data spec
      secured-bio demo PILOT --out DIR             write a pilot's demo cohort for N sites
    """
    from secured_bio._logging import configure_logging

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    configure_logging(-1 if quiet else verbose, log_file)


# --------------------------------------------------------------------------------- pilots
@cli.group()
def pilots() -> None:
    """List and run the registered pilot plugins."""


@pilots.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def pilots_list(as_json: bool) -> None:
    """Show every registered pilot: name, description and status.

    Pilots come from the entry-point group ``secured_bio.pilots``: the four built-in ones
    and any installed third-party plugin.
    """
    from secured_bio.pilots import STATUSES, list_pilots

    specs = list_pilots()
    if as_json:
        rows = [
            {"name": s.name, "description": s.description, "status": s.status,
             "data_specs": list(s.data_specs),
             "rules_file": str(s.rules_file) if s.rules_file else None}
            for s in specs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="secured_bio pilots", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("status")
    for s in specs:
        table.add_row(s.name, s.description, s.status)
    console = Console(soft_wrap=False)
    console.print(table)
    for status, meaning in STATUSES.items():
        console.print(f"  [dim]{status}: {meaning}[/dim]", soft_wrap=True)


@pilots.command("run")
@click.argument("name")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created; replaced only when the run succeeds).",
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="YAML config; keys and defaults are in the pilot's config schema.",
)
@click.option("--sites", type=click.IntRange(min=1), help="Number of sites (overrides config).")
@click.option("--seed", type=int, help="Random seed of the demo data (overrides config).")
@click.option(
    "--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Use this cohort folder (layout of 'secured-bio demo') instead of simulating one.",
)
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE",
    help="Set one config key (YAML value), e.g. --set test=logistic (repeatable).",
)
def pilots_run(
    name: str, out_dir: Path, config_path: Path | None, sites: int | None, seed: int | None,
    data_dir: Path | None, settings: tuple[str, ...],
) -> None:
    """Run pilot NAME end to end on its demo data; write OUT/metrics.json and its outputs."""
    from secured_bio.pilots import run_pilot

    config = _config_from(config_path, settings)
    if sites is not None:
        config["sites"] = sites
    if seed is not None:
        config["seed"] = seed
    if data_dir is not None:
        config["data"] = str(data_dir)
    metrics = run_pilot(name, out_dir, config)
    _stderr(
        f"pilot {name} ({metrics['status']}) finished in {metrics['elapsed_s']:.1f} s; "
        f"metrics: {out_dir / 'metrics.json'}",
        style="green",
    )


@pilots.command("collect")
@click.argument("name")
@click.option(
    "--results", "results_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Folder the pilot's workflow rules wrote (same layout as 'pilots run' writes).",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config used for the run.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Set one config key (YAML value), repeatable.")
def pilots_collect(
    name: str, results_dir: Path, config_path: Path | None, settings: tuple[str, ...]
) -> None:
    """Write RESULTS/metrics.json for pilot NAME from outputs its workflow rules made."""
    from secured_bio.pilots import collect_pilot

    collect_pilot(name, results_dir, _config_from(config_path, settings))
    _stderr(f"metrics: {results_dir / 'metrics.json'}", style="green")


def _config_from(config_path: Path | None, settings: tuple[str, ...]) -> dict[str, Any]:
    """Config from a YAML file plus KEY=VALUE overrides (dotted keys reach nested maps)."""
    from secured_bio.config import load_yaml

    config: dict[str, Any] = load_yaml(config_path) if config_path else {}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _parse_scalar(raw)
    return config


# ------------------------------------------------------------------------------- validate
def _split_cols(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


@cli.command()
@click.argument("kind")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--atlas", type=click.Path(path_type=Path), help="nifti: label atlas on the same grid."
)
@click.option("--qi", help="clinical: comma-separated quasi-identifier columns.")
@click.option("--sensitive", help="clinical: the sensitive column.")
@click.option("--id-column", help="clinical: the record ID column (default patient_id).")
@click.option(
    "--max-records", type=click.IntRange(min=1),
    help="vcf: scan only the first N records (default: all; headers are always checked).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def validate(
    kind: str, path: Path, atlas: Path | None, qi: str | None, sensitive: str | None,
    id_column: str | None, max_records: int | None, as_json: bool,
) -> None:
    """Check the input at PATH against the data spec of KIND.

    \b
    Kinds: vcf, phenotype (alias covariate), nifti, vitals, fhir, clinical.
    The specs live in data_specs/ (one YAML per kind). Exit code 0 when the input
    conforms, 1 with a message naming what/where/expected/how to fix when it does not.
    """
    from secured_bio.specs import validate as validate_input

    options: dict[str, Any] = {}
    if atlas is not None:
        options["atlas"] = atlas
    if qi is not None:
        options["qi"] = _split_cols(qi)
    if sensitive is not None:
        options["sensitive"] = sensitive
    if id_column is not None:
        options["id_column"] = id_column
    if max_records is not None:
        options["max_records"] = max_records
    report = validate_input(kind, path, **options)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        summary = ", ".join(f"{k}={v}" for k, v in report.summary.items())
        click.echo(f"OK {report.kind} {report.path}: {summary}")
        for w in report.warnings:
            _stderr(f"warning: {w}", style="yellow")


# ----------------------------------------------------------------------------------- demo
@cli.command()
@click.argument("pilot")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo cohort (replaced only when complete; never others' files).",
)
@click.option("--sites", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE",
    help="Simulator parameter, e.g. --param samples_per_site=500 (repeatable).",
)
def demo(pilot: str, out_dir: Path, sites: int, seed: int, params: tuple[str, ...]) -> None:
    """Write the seeded demo cohort of PILOT for N sites into OUT.

    \b
    genomic_access        bgzipped + tabix-indexed VCF per site, pheno.tsv, covar.tsv
    tumor_classification  4D NIfTI series per subject, label atlas, participants.tsv
    telemonitoring        vitals long CSV and FHIR R4 bundle per site
    synthetic_education   paediatric oncology case table, vitals per site, imaging cohort
    """
    from secured_bio.testing import write_demo_cohort

    kwargs: dict[str, Any] = {}
    for p in params:
        key, sep, raw = p.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {p!r}", param_hint="--param")
        kwargs[key] = _parse_scalar(raw)
    write_demo_cohort(out_dir, pilot=pilot, n_sites=sites, seed=seed, **kwargs)
    _stderr(f"demo cohort for {pilot} ({sites} sites) written to {out_dir}", style="green")


def _parse_scalar(raw: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


# -------------------------------------------------------------------------------- summary
@cli.command()
@click.argument("results", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the curated summary (Markdown) here instead of stdout.",
)
@click.option(
    "--full", "full_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every figure of every metrics.json here (Markdown).",
)
@click.option(
    "--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the self-contained results page (key figures, plots, captions) here.",
)
def summarize(results: Path, out_file: Path | None, full_file: Path | None,
              html_file: Path | None) -> None:
    """Summarize every pilot's metrics.json under RESULTS.

    The curated summary gives per pilot the headline result in words and numbers, what it
    means and what to look at next; --full keeps every figure, --html writes one results
    page with the key figures and the main plots embedded.
    """
    from secured_bio._atomic import atomic_write
    from secured_bio.report import curated_summary, results_page, summarize_results

    text = curated_summary(results, page=html_file, full=full_file)
    if full_file is not None:
        with atomic_write(full_file) as fh:
            fh.write(summarize_results(results))
    if html_file is not None:
        with atomic_write(html_file) as fh:
            fh.write(results_page(results, full=full_file))
    if out_file is None:
        click.echo(text, nl=False)
        return
    with atomic_write(out_file) as fh:
        fh.write(text)


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 failed, 2 usage)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="secured-bio", standalone_mode=False)
    except click.exceptions.Abort:
        _stderr("aborted")
        return EXIT_FAILED
    except click.ClickException as e:
        e.show()
        if (isinstance(e, click.BadParameter) and not isinstance(e, click.MissingParameter)
                and isinstance(getattr(e.param, "type", None), click.Path)):
            return EXIT_FAILED  # a path that is a folder (or missing): a file problem
        return e.exit_code if e.exit_code in (EXIT_FAILED, EXIT_USAGE) else EXIT_USAGE
    except SecuredBioError as e:  # the class decides the exit code (errors.py)
        _stderr(f"error: {e}")
        for note in getattr(e, "__notes__", []):
            _stderr(f"  {note}", style="red")
        if debug:
            traceback.print_exc()
        return EXIT_USAGE if e.exit_code == EXIT_USAGE else EXIT_FAILED
    except KeyboardInterrupt:
        _stderr("interrupted")
        return 130
    except Exception as e:  # an internal error: do not echo its message, it may hold data
        tb = traceback.extract_tb(e.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        _stderr(
            f"internal error: {type(e).__name__} at {where}. This is a bug in secured_bio or "
            "an input it does not check yet; rerun with --debug for the traceback (it may "
            "show data values) and report it."
        )
        if debug:
            traceback.print_exc()
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
