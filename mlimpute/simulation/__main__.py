"""``python -m mlimpute.simulation``: run the classroom simulation study from the command line."""

import sys

from mlimpute.simulation import main

sys.exit(main())
