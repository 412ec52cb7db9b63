"""`python -m tools.manifests_check` (`make manifests-check`)."""

import sys

from .cli import main

sys.exit(main())
