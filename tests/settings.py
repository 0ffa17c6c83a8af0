"""Settings of the test run: development, asked for explicitly (production is the default).

Set in the environment, not only here, so that the processes the tests start (workers,
`manage.py` commands) ask for it too; a test of production settings removes it.
"""

import os

os.environ.setdefault("DEBUG", "true")

from config.settings import *  # noqa: E402, F403
