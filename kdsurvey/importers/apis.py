"""Where the services that know about papers live, and how a command points elsewhere.

Every client takes a base URL; tests point them at servers on 127.0.0.1 (never the real hosts)
through the ``--<api>-api`` options or the ``KDSURVEY_<API>_API`` environment variables.
"""

from __future__ import annotations

import os

DEFAULT_ARXIV_API = "https://export.arxiv.org/api/query"
DEFAULT_CROSSREF_API = "https://api.crossref.org"
DEFAULT_GITHUB_API = "https://api.github.com"
DEFAULT_DOI_API = "https://doi.org/api/handles"

#: Environment variables that override the default base URLs (options override these).
ENV_ARXIV_API = "KDSURVEY_ARXIV_API"
ENV_CROSSREF_API = "KDSURVEY_CROSSREF_API"
ENV_GITHUB_API = "KDSURVEY_GITHUB_API"
ENV_DOI_API = "KDSURVEY_DOI_API"


def base_url(option: str | None, env: str, default: str) -> str:
    """The base URL to use: the option, else the environment variable, else the public endpoint."""
    return (option or os.environ.get(env) or default).rstrip("/")


#: The services the checks talk to: option name -> (environment variable, public endpoint, what).
APIS = {
    "arxiv": (ENV_ARXIV_API, DEFAULT_ARXIV_API, "arXiv API"),
    "crossref": (ENV_CROSSREF_API, DEFAULT_CROSSREF_API, "Crossref API"),
    "github": (ENV_GITHUB_API, DEFAULT_GITHUB_API, "GitHub API, used when GITHUB_TOKEN is set"),
    "doi": (ENV_DOI_API, DEFAULT_DOI_API, "DOI handle API"),
}


def add_api_options(parser, *apis: str) -> None:
    """``--<api>-api URL`` options, so tests (and mirrors) can point a command elsewhere."""
    for api in apis:
        env, default, what = APIS[api]
        parser.add_argument(
            f"--{api}-api",
            metavar="URL",
            help=f"base URL of the {what} (${env}, default {default})",
        )


def api_base(args, api: str) -> str:
    """The base URL of ``api`` for a command run with ``args`` (see :func:`add_api_options`)."""
    env, default, _ = APIS[api]
    return base_url(getattr(args, f"{api}_api"), env, default)
