"""``secured-bio synth images``: train a small diffusion model and write synthetic images.

A standalone click command, attached to the ``synth`` group by
:mod:`secured_bio.privacy.synthetic.cli`. Errors raised here are turned into one-line messages
and exit codes by ``secured_bio.cli.main`` (1 bad input, 2 bad option). The output folder is
written completely or not at all.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["images"]


@click.command()
@click.option("--in", "in_dir", required=True, type=click.Path(path_type=Path),
              help="Imaging cohort (<site>/sub-*/func/*.nii.gz, participants.tsv) or a folder "
                   "of 3D NIfTI images, one per subject.")
@click.option("--n", "n", required=True, type=click.IntRange(min=1),
              help="Number of images to generate.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output folder (new, empty, or an earlier output; replaced when complete).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Training epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: the GPU when one is available, else the CPU.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of training and sampling.")
@click.option("--conditional", is_flag=True,
              help="Class-conditional model on the labels; generates the classes in turn.")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="Labels TSV (participant_id, label) [default: IN/participants.tsv].")
@click.option("--size", type=click.IntRange(min=4), default=16, show_default=True,
              help="Side of the square training slices (even).")
@click.option("--slices", type=click.IntRange(min=1), default=3, show_default=True,
              help="Central axial slices taken from each volume.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Training batch size.")
@click.option("--timesteps", type=click.IntRange(min=1), default=50, show_default=True,
              help="DDIM sampling steps.")
def images(in_dir: Path, n: int, out: Path, epochs: int, device: str, seed: int,
           conditional: bool, labels: Path | None, size: int, slices: int, batch_size: int,
           timesteps: int) -> None:
    """Synthetic 2D images from a MONAI diffusion model (DDPM training, DDIM sampling).

    \b
    secured-bio synth images --in demo/ --n 32 --out synth_images/ --epochs 20
    secured-bio synth images --in demo/ --n 32 --out synth_images/ --conditional --device cuda

    \b
    Writes OUT/samples/synth-NNNN.nii.gz, OUT/samples.tsv, OUT/grid.png, OUT/model.pt and
    OUT/synth_images.json (loss and seconds per epoch; MMD^2 of real vs generated slices on
    fixed random CNN features, and SSIM diversity). The CPU default is tiny (16 x 16 slices);
    larger sizes want --device cuda.
    """
    from secured_bio._progress import progress_enabled
    from secured_bio.privacy.synthetic.images import synthesize_images

    report = synthesize_images(
        in_dir, out, n=n, epochs=epochs, device=device, seed=seed, conditional=conditional,
        labels=labels, size=size, slices=slices, batch_size=batch_size, timesteps=timesteps,
        progress=progress_enabled(),
    )
    t = report["training"]
    m = report["metrics"]
    line = (f"trained on {report['data']['real_images']} slices "
            f"({t['epochs']} epochs, {t['mean_seconds_per_epoch']:.2f} s/epoch on "
            f"{t['device']}); generated {n} images")
    if "mmd2_real_vs_generated" in m:
        line += (f"; MMD^2 real vs generated {m['mmd2_real_vs_generated']:.4f} "
                 f"(real halves {m['mmd2_real_half_vs_half']:.4f})")
    click.echo(f"{line} -> {out}")
