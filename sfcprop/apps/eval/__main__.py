"""`python -m sfcprop.apps.eval ...` and `torchrun ... -m sfcprop.apps.eval ...`."""

import sys

from sfcprop import errors


def _main() -> int:
    from sfcprop.apps.eval import main  # torch loads under the error policy (Ctrl-C: 130)

    return main()


sys.exit(errors.run_command(_main))
