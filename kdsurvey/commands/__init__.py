"""The verbs of the ``kdsurvey`` command line, one module each; :mod:`kdsurvey.cli` assembles them.

Each module's ``register(subparsers)`` adds its parser and sets ``func``. Commands are the only
code that knows about argparse namespaces, stdout and exit codes (:class:`common.Failure`); the
library below them reports problems and raises its own errors.
"""
