"""Where the common libraries write their training settings: repository, commit and file, once.

Presets (:class:`kdsurvey.losses.base.Preset`) cite a line of these files; naming each file here
keeps every citation of it at the same commit.
"""

from __future__ import annotations

MDISTILLER = "megvii-research/mdistiller@a08d46f"
MDISTILLER_CFG = f"{MDISTILLER} mdistiller/engine/cfg.py"  # defaults of every mdistiller config
REPDISTILLER = "HobbitLong/RepDistiller@b84f547"
REPDISTILLER_CIFAR = f"{REPDISTILLER} scripts/run_cifar_distill.sh"  # one line per method
