"""``python -m modelserve.worker SPEC.json``."""

import sys

from modelserve.worker.main import main

sys.exit(main())
