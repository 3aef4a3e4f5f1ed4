"""secured_bio: privacy-preserving multi-site analysis of health data.

The library is organised as domain modules (``genomics``, ``imaging``, ``telemetry``) on top
of shared privacy primitives (``privacy.smpc``, ``privacy.federated``, ``privacy.anonymize``,
``privacy.synthetic``, ``privacy.assess``).  Pilots are plugins (``secured_bio.pilots``) that
wire them together; Snakemake workflows call the ``secured-bio`` command.

Importing the package has no side effects: nothing heavy (torch, CrypTen, Flower) is
imported and no plugin is discovered until it is asked for.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("secured-bio")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
