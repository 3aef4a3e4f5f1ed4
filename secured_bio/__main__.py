"""``python -m secured_bio`` is the ``secured-bio`` command."""

import sys

from secured_bio.cli import main

sys.exit(main())
