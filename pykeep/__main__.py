"""``python -m pykeep`` is the ``pykeep`` command."""

from pykeep.cli import main

raise SystemExit(main())
