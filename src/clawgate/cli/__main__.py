"""Allow `python -m clawgate.cli`."""

from .main import main

main()
