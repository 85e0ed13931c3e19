"""`python -m tsn_keras.splits`: checks a dataset (see `command.main`)."""

import sys

from tsn_keras.splits.command import main

if __name__ == "__main__":
    sys.exit(main())
