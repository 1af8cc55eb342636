"""``python -m slowthink.cli ...`` (and ``torchrun ... -m slowthink.cli rl ...``): the ``slowthink`` command.

Must not import anything but ``slowthink.cli`` itself (tests/test_layers.py).
"""

from slowthink.cli import main

main()
