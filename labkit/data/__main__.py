"""``python -m labkit.data download mnist fashion-mnist`` (see ``labkit.data.cli``)."""
import sys

from labkit.data.cli import main

sys.exit(main())
