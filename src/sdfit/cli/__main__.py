"""python -m sdfit.cli"""

import sys

from . import main

sys.exit(main())
