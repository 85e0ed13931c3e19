"""`python -m tsn_keras.synthetic` (also `tsn-synthetic`)."""

import sys

from tsn_keras.synthetic.command import main

if __name__ == "__main__":
    sys.exit(main())
