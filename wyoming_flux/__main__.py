"""python -m wyoming_flux"""

import sys

from .entry import main

sys.exit(main())
