"""For scripts that tests run in a subprocess: die by SIGKILL after a given optimiser step."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import torch


def sigkill_after(kill_at: int) -> Callable[[], int]:
    """Count SGD steps; SIGKILL this process right after step ``kill_at``. Returns a
    function that tells how many steps were taken (for a run that finished first)."""
    taken = 0
    plain_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        nonlocal taken
        out = plain_step(self, *args, **kwargs)
        taken += 1
        if taken == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    torch.optim.SGD.step = step
    return lambda: taken
