"""How long the simulated cloud's transitions take (tests: near zero; `seed()`: the measured figures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SimTimings:
    """Seconds each transition takes. `operation` is how long an async operation stays pending;
    `cloud_init` is the wait between `running` and the VM's TLS port answering (packages, nginx);
    `pull` is how long an /api/pull takes. The setup steps a first boot goes through (`driver`,
    `docker`, `image`, `ollama_start`, and each model's `model_bytes` at `bandwidth` bytes/s) and
    the services' start on a later boot (`services`) are 0 here (tests); `seed()` gives the real
    figures, scaled."""

    boot: float = 0.2
    stop: float = 0.2
    destroy: float = 0.2
    operation: float = 0.05
    cloud_init: float = 0.0
    pull: float = 0.0
    token: float = 0.005
    driver: float = 0.0
    docker: float = 0.0
    image: float = 0.0
    ollama_start: float = 0.0
    services: float = 0.0  # a boot whose disk is set up already: Docker and Ollama start
    model_bytes: int = 4_900_000_000  # granite3.1-dense:8b
    bandwidth: float = 0.0  # bytes/s of a model pull; 0: at once
    snapshot: float = 0.0  # create-snapshot of a stopped instance's disk
    template: float = 0.0  # promote-snapshot-to-template
    template_boot: float = 0.0  # cloud-init's packages step on a boot from a baked template (all there)
    volume_attach: float = 0.0  # attach-block-storage-volume-to-instance (spec.coldStart.modelVolume)

    @classmethod
    def seed(cls, scale: float = 1.0, **override: float) -> SimTimings:
        """The seed's measured figures on real Exoscale (boot 1-2 min, NVIDIA driver and Docker 2-3
        min, Ollama image 1-2 min, model 1-2 min; 30-60 s from stopped), times `scale`."""
        figures = {
            "boot": 40.0,  # the instance to running (a start from stopped too)
            "stop": 20.0,
            "destroy": 20.0,
            "operation": 1.0,
            "cloud_init": 45.0,  # package lists and packages (nginx, Docker) before the setup script
            "pull": 100.0,
            "driver": 120.0,
            "docker": 40.0,
            "image": 80.0,
            "ollama_start": 5.0,
            "services": 10.0,
            "bandwidth": 50e6,  # 4.9 GB in ~100 s
            "snapshot": 60.0,
            "template": 120.0,
            "template_boot": 15.0,  # package lists only: the packages are on the baked disk
            "volume_attach": 10.0,  # the volume's operation until the device shows on the VM
        }
        out: dict[str, Any] = {k: (v / scale if k == "bandwidth" else v * scale) for k, v in figures.items()}
        return cls(**{"token": 0.005, **out, **override})
