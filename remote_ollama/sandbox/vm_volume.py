"""A simulated VM's model volume (spec.coldStart.modelVolume): what the setup's `volume` step does
on a real VM (vm/volume.py), against the simulator's block storage (sandbox/exoscale/volumes.py).

The step waits until the volume its user-data names is attached to this instance, then the model
directory is the volume's `contents` (kept across instances), else the VM's own disk. A volume
that never comes fails the step after VOLUME_WAIT, as the script does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from remote_ollama.sandbox.exoscale.volumes import Volume
from remote_ollama.vm.volume import VOLUME_WAIT

# instance id -> the volumes attached to it (every zone of the simulator)
VolumeLookup = Callable[[str], list[Volume]]


def mounted(lookup: VolumeLookup | None, instance_id: str, volume_id: str | None) -> Volume | None:
    """The named volume when it is attached to this instance (the device is there)."""
    if lookup is None or volume_id is None:
        return None
    return next(
        (v for v in lookup(instance_id) if v.id == volume_id and v.state == "attached"),
        None,
    )


async def wait_for(
    lookup: VolumeLookup | None, instance_id: str, volume_id: str, wait: float = VOLUME_WAIT
) -> Volume | None:
    """The step's wait for the device; None after `wait` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while (volume := mounted(lookup, instance_id, volume_id)) is None and loop.time() < end:
        await asyncio.sleep(0.02)
    return volume
