"""The experiments the CLI and the report know, as one explicit table.

Each entry names its seed (file and section), its Config class (whose defaults are the seed's
settings, the `--full` run) and its `run(cfg, workdir) -> results` function, plus the overrides
that make the `--quick` preset (minutes on a 2-core CPU, embedded data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from jaxunsup import autoencoder


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    seed: str  # seed file and section, e.g. "000 §2"
    summary: str
    config: type
    run: Callable[[Any, Any], dict]
    quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    full: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def make_config(self, preset: str = "default", **overrides) -> Any:
        """The Config for `preset` ("default" = the seed's settings, "quick", "full")."""
        base = {"default": {}, "quick": self.quick, "full": self.full}[preset]
        return self.config(**{**base, **overrides})


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment(
            name="ae-stacked",
            seed="000 §2",
            summary="stacked MLP autoencoder 784-128-32-10, MSE, Adam 1e-4",
            config=autoencoder.StackedConfig,
            run=autoencoder.run,
            # 60 epochs of the embedded 4,000 images = 4,800 steps = the post's 4 epochs.
            quick={"epochs": 60, "checkpoint_every": 20},
        ),
    ]
}
