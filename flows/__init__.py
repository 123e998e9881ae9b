"""Prefect flows over catvec's pipelines: pretrain.py and finetune.py, both through the one
adapter in adapter.py; deployments in prefect.yaml, served by serve.py.

The one Prefect setting the flows need is set here, before anything imports prefect:
with no server configured, Prefect starts a temporary one, and on a fresh PREFECT_HOME
its first start (database migrations) takes longer than Prefect's default 20 s wait on a
small machine. An environment variable of the same name wins.
"""

import os

STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_TIMEOUT_S = 180  # also how long serve.py waits for a server it starts

os.environ.setdefault(STARTUP_SETTING, str(STARTUP_TIMEOUT_S))
