"""Videos -> sharded TFRecords; the flags and what they do: tsn_keras/convert/ (`--help`).

The same command as `python -m tsn_keras.convert` and `tsn-convert`.
"""

import sys

from tsn_keras import cli

if __name__ == "__main__":
    sys.exit(cli.run_module("tsn_keras.convert"))
