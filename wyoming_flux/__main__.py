"""python -m wyoming_flux"""

import sys

from .cli import main

sys.exit(main())
