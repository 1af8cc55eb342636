"""``python -m slowthink.cli ...`` (and ``torchrun ... -m slowthink.cli rl ...``): the ``slowthink`` command."""

from slowthink.cli import main

main()
