"""``secured-bio education``: synthetic teaching cases from a YAML spec.

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main`` (1 bad input, 2 usage).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def education() -> None:
    """Synthetic patient cases for teaching: table summary, vital-sign chart and image.

    \b
    secured-bio demo synthetic_education --out demo
    secured-bio education example-spec > spec.yaml
    secured-bio education cases --spec spec.yaml --sources demo --out teaching_cases
    """


@education.command()
@click.option("--spec", "spec", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML case spec: sources, generators, groups of cases with counts and "
                   "conditions (see 'secured-bio education example-spec').")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (new, empty or an earlier output; replaced as a whole, only "
                   "when everything succeeded).")
@click.option("--sources", "sources", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder that the spec's relative source paths start from "
                                 "[default: the spec's folder].")
@click.option("--method", type=click.Choice(("copula", "tvae", "mst")), default=None,
              help="Override the spec's table generator (mst is differentially private).")
@click.option("--epsilon", type=float, default=None,
              help="Override the spec's table epsilon (method mst; > 0).")
@click.option("--vitals-epsilon", "vitals_epsilon", type=float, default=None,
              help="Fit the vital-sign generator with this epsilon (patient-level DP; > 0) "
                   "instead of the spec's vitals.epsilon.")
@click.option("--image-epochs", "image_epochs", type=click.IntRange(min=1), default=None,
              help="Override the spec's image-model training epochs.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars (stderr) while training the generators.")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of OUT (outside OUT) (JSON to FILE, "
              "HTML page to FILE with the suffix .html; see secured_bio.passport).")
def cases(spec: Path, out: Path, sources: Path | None, method: str | None,
          epsilon: float | None, vitals_epsilon: float | None, image_epochs: int | None,
          progress: bool, passport: Path | None) -> None:
    """Generate the spec's teaching cases: per case JSON, Markdown and HTML pages.

    The case table, vital signs and images come from generators fitted on the spec's real
    sources; conditions (counts, age ranges, diagnoses, events) hold exactly for every case;
    each case carries a privacy statement with the generators' audit (membership inference,
    exact copies, distance to the closest real record).  Open OUT/index.html.
    """
    from secured_bio.education.cases import make_cases
    from secured_bio.education.spec import load_spec

    parsed = load_spec(spec, sources=sources, method=method, epsilon=epsilon,
                       image_epochs=image_epochs, vitals_epsilon=vitals_epsilon)
    manifest = make_cases(parsed, out, progress=progress)
    if passport is not None:
        from secured_bio.passport import build_passport, write_passport

        ctx = click.get_current_context()
        write_passport(build_passport(
            out, kind="education_cases", report=manifest, command=ctx.command_path,
            parameters=ctx.params), passport)
    priv = manifest["privacy"]["table"]
    auc = priv.get("membership_inference_auc")
    click.echo(f"wrote {manifest['n_cases']} synthetic teaching cases "
               f"({100 * manifest['conditions_met']['share']:.0f}% meet their conditions; "
               f"table generator {priv['generator']}"
               + (f", membership-inference AUC {auc:.2f}" if auc is not None else "")
               + f") -> {out / 'index.html'}")


@education.command("example-spec")
def example_spec() -> None:
    """Print a complete example spec (for the demo cohort) to edit."""
    from secured_bio.education.spec import example_spec as text

    click.echo(text(), nl=False)
