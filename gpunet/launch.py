"""The `gpunet` command's entry point: start the CLI, and turn a Ctrl-C or SIGTERM that arrives
while it is still importing (NumPy, CuPy: a second or more) into one line, not a traceback."""

import signal
import sys


def main() -> int:
    def _terminated(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        from gpunet.cli import main as cli_main
    except KeyboardInterrupt:
        print("\ngpunet: interrupted while starting; nothing was written.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return cli_main()
