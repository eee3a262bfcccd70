"""`python -m tests.training.offline_cli train ...`: the training command line as on a machine
without network (`data.network_available` answers False), whatever network this machine has."""

import sys

from training import cli, data

data.network_available = lambda *args, **kwargs: False
sys.exit(cli.main())
