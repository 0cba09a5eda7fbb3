"""Distil a student from a frozen teacher with any registered loss: the training harnesses.

* :class:`Distiller` (:mod:`.harness`): any networks, features tapped by name, any loss of the
  catalogue (classification, dense prediction, embeddings).
* :class:`LMDistiller` (:mod:`.lm`): causal language models with the token-level losses, Hugging
  Face conventions (label shift, ``-100`` masks, on-policy samples, different vocabularies).
"""

from kdsurvey.distill.harness import Context, Distiller, DistillOutput, TapError, resolve_module
from kdsurvey.distill.lm import LMDistiller

__all__ = ["Context", "DistillOutput", "Distiller", "LMDistiller", "TapError", "resolve_module"]
