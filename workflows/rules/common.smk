# Shared set-up of the secured_bio workflow: config validation and helpers.
# Logic lives in the library; rules call the `secured-bio` command.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "../schemas/config.schema.yaml")


def demo_params(pilot):
    """Simulator parameters of one pilot as repeated --param KEY=VALUE options."""
    params = config["demo"].get(pilot, {})
    return " ".join(f"--param {k}={v}" for k, v in sorted(params.items()))
