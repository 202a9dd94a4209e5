"""A new document-level filter with its own profile section: drop documents whose page URL is too long.

This file is the whole filter. In the toolkit it would be ``filters/url_length.py`` and its step one
line in ``filters/steps.py`` (``"url_length": (URL_LENGTH,),``); here, outside the package, the
:func:`filters.steps.register` call at the bottom does the same. A profile then runs it by listing
``url_length`` in ``run.stages`` and sets it in its own section::

    url_length:
      enabled: true
      max_chars: 120

The runner (:func:`filters.step.run_step`) counts documents in and out and drops by reason for the
funnel (stage ``url_length``, reason ``document:url_too_long``) and diverts the rejects.
"""

from __future__ import annotations

from dataclasses import dataclass

from filters.base import Verdict
from filters.step import Step
from filters.steps import register


@dataclass
class UrlLengthConfig:
    """The ``url_length`` profile section."""

    enabled: bool = True
    max_chars: int = 200          # a document whose URL is longer is dropped


class UrlLengthStep(Step):
    name = "url_length"            # the funnel's stage name
    section = "url_length"         # the profile section ...
    config = UrlLengthConfig       # ... and the dataclass it is validated into
    level = "document"

    def verdict(self, doc, cfg: UrlLengthConfig, prepared) -> Verdict:
        return "url_too_long" if doc.url and len(doc.url) > cfg.max_chars else None


URL_LENGTH = UrlLengthStep()
register("url_length", URL_LENGTH)
