"""kdsurvey: a validated, tested catalogue of knowledge-distillation research."""

__version__ = "0.1.0"
