"""`python -m sfcprop.train`: see `sfcprop.train.cli`."""

import sys

from sfcprop import errors


def _main() -> int:
    from sfcprop.train.cli import _main as train  # torch loads under the error policy

    return train(None, None)


sys.exit(errors.run_command(_main))
