#!/usr/bin/env python3
"""Build the Lambda bundle into ``build/lambda-bundle/``: ``stacks/bundle.py`` (what synth runs), by hand.

Example
-------
    $ .venv/bin/python scripts/build_bundle.py      # prints the bundle's size zipped / unzipped
    $ .venv/bin/python scripts/build_bundle.py --hash   # the input hash only (what CDK uses as asset hash)
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambdas"), str(ROOT)]  # the repository's packages, not an installed copy

from stacks.bundle import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
