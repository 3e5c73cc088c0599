"""`python -m vitrine_services.feedback [--log-level L] [OPTIONS]`: the same as `vitrine feedback`,
loading only this service's command (the container entry point)."""

import sys

from vitrine.cli.main import main
from vitrine_services.feedback.cli import register

if __name__ == "__main__":
    argv = sys.argv[1:]
    # global options (--log-level X) come before the command name
    split = 2 if argv[:1] == ["--log-level"] else 0
    raise SystemExit(main([*argv[:split], "feedback", *argv[split:]], registrars=(register,)))
