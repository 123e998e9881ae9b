"""Named fault points for crash tests.

`fault_point("name")` does nothing unless the environment variable CATVEC_KILL_AT names
this point; then the process kills itself with SIGKILL on the spot, as a power cut or an
OOM killer would. Tests use it to prove that a run killed anywhere leaves the previous
`latest` intact. Points: events-read, shard-extract (each shard task, also on a Dask worker), training-epoch (pretrain), finetune-epoch, vectors-written (also
the fine-tuned embedding export), before-commit, before-publish (both commands).
"""

import os
import signal

ENV = "CATVEC_KILL_AT"


def fault_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
