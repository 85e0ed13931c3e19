"""Videos -> sharded TFRecords; the flags and what they do: tsn_keras/convert/ (`--help`)."""

import sys

from tsn_keras import convert

if __name__ == "__main__":
    sys.exit(convert.main())
