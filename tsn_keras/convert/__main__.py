"""`python -m tsn_keras.convert` (also `scripts/make_tfrecords.py`, `tsn-convert`)."""

import sys

from tsn_keras.convert.command import main

if __name__ == "__main__":
    sys.exit(main())
