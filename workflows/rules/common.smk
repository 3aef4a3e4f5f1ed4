# Shared set-up of the secured_bio workflow: config validation and helpers.
# Logic lives in the library; rules call the `secured-bio` command.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "../schemas/config.schema.yaml")


SITES = [f"site{i}" for i in range(1, config["sites"] + 1)]

# One layout for every pilot: its demo cohort in results/<pilot>/demo/, its outputs and
# metrics.json in results/<pilot>/run/ (written by `secured-bio pilots run`, or step by step
# by rules and then `secured-bio pilots collect`).


def pilot_metrics(pilot):
    """Path of a pilot's metrics.json."""
    return f"results/{pilot}/run/metrics.json"


def demo_params(pilot):
    """Simulator parameters of one pilot as repeated --param KEY=VALUE options."""
    params = config["demo"].get(pilot, {})
    return " ".join(f"--param {k}={v}" for k, v in sorted(params.items()))


def education_overrides():
    """Options of `secured-bio education cases` from config["education"]."""
    opts = config["education"]
    out = []
    if opts.get("method"):
        out.append(f"--method {opts['method']}")
    if opts.get("epsilon") is not None:
        out.append(f"--epsilon {opts['epsilon']}")
    if opts.get("image_epochs"):
        out.append(f"--image-epochs {opts['image_epochs']}")
    return " ".join(out)
