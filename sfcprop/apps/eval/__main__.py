"""`python -m sfcprop.apps.eval ...` and `torchrun ... -m sfcprop.apps.eval ...`."""

import sys

from sfcprop.apps.eval import main

sys.exit(main())
