"""`python -m gpunet`: the same as the `gpunet` command."""

import sys

from gpunet.launch import main

sys.exit(main())
