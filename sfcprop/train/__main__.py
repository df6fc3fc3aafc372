"""`python -m sfcprop.train`: see `sfcprop.train.cli`."""

import sys

from .cli import main

sys.exit(main())
