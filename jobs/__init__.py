"""Ray job entry points: ``python -m jobs.<name> --config x.yaml``. Wiring only; logic is in teran_core."""

import os

# Ray reads this once, when it is first imported (ray._private.ray_constants), and job modules import
# ray at the top: set here, before any of them, it keeps every server of a local Ray on 127.0.0.1.
# By default Ray's servers listen on every interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
