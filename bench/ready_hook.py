"""gunicorn config for benchmark servers: each worker leaves a file once it has loaded the app.

gunicorn answers as soon as its first worker is up, while the others may still be importing the
app; connections opened then all land on that one worker and the run measures half the server.
`serve.py` passes this file as `--config` and waits for one file per worker before it measures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

READY_DIR = "BENCH_GUNICORN_READY_DIR"


def post_worker_init(worker: Any) -> None:
    """Called by gunicorn in each worker after the app is loaded, before it serves."""
    folder = os.environ.get(READY_DIR)
    if folder:
        (Path(folder) / str(os.getpid())).touch()
