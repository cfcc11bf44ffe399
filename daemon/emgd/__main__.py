"""Allow ``python -m emgd`` as an alias of the ``emgd`` console script."""

import sys

from emgd.cli import main

sys.exit(main())
