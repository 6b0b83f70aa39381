"""``python -m timnode`` is the ``timnode`` command."""

from timnode.cli import main

raise SystemExit(main())
