"""`python -m gpunet`: the same as the `gpunet` command."""

import sys

from gpunet.cli import main

sys.exit(main())
