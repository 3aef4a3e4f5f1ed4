"""secured_bio: privacy-preserving multi-site analysis of health data.

The library is organised as domain modules (``genomics``, ``imaging``, ``telemetry``) on top
of shared privacy primitives (``privacy.smpc``, ``privacy.federated``, ``privacy.anonymize``,
``privacy.synthetic``, ``privacy.assess``).  Pilots are plugins (``secured_bio.pilots``) that
wire them together; Snakemake workflows call the ``secured-bio`` command.

Importing the package imports nothing heavy (torch, CrypTen, Flower) and discovers no
plugin until one is asked for.  Its one side effect: ``OMP_WAIT_POLICY`` defaults to
``PASSIVE`` (unless set).  torch and scikit-learn each load their own OpenMP runtime; once
both have run in one process, their idle threads spin against each other and torch training
became ~35x slower on a 2-core host (0.4 s vs 13 s per epoch of the image model after a
gradient-boosting fit).  Passive waiting removes that; it must be set before either
runtime starts, hence here.
"""

import os
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("secured-bio")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
