"""``python -m realmode.native``: build the in-process DIP-MON library if it is stale."""

import sys

from realmode.native.build import BuildFailed, build

try:
    build()
except BuildFailed as problem:
    print(f"realmode.native: {problem}", file=sys.stderr)
    sys.exit(4)
