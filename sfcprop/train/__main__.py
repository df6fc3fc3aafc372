"""`python -m sfcprop.train`: see `sfcprop.train.cli`."""

import sys

from sfcprop.train.cli import main

sys.exit(main())
