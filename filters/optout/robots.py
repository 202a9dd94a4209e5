"""robots.txt and ai.txt for our user agent, parsed with Protego (RFC 9309: longest match, ``*``, ``$``).

``urllib.robotparser`` would do for plain prefixes, but it applies the first matching rule and treats
``*`` and ``$`` literally, so ``Disallow: /*.jpg$`` would silently allow every JPEG; Protego
implements the RFC. ai.txt (Spawning's format) uses the same syntax, with patterns such as
``Disallow: *.jpg``; patterns without a leading ``/`` or ``*`` are made relative to the root.
"""

from __future__ import annotations

import re

from protego import Protego


class RobotsRules:
    """A parsed robots.txt-style file; :meth:`allowed` answers for any of our agent names."""

    def __init__(self, text: str, agents: list[str]):
        self._rp = Protego.parse(text)
        self.agents = agents

    @classmethod
    def allow_all(cls, agents: list[str]) -> RobotsRules:
        return cls("", agents)

    def allowed(self, url: str) -> bool:
        """False if any of our agents (our token first, then extra ones) may not fetch ``url``."""
        return all(self._rp.can_fetch(url, agent) for agent in self.agents)


_AITXT_RULE = re.compile(r"^(\s*(?:dis)?allow\s*:\s*)([^\s/*#][^\s#]*)", re.IGNORECASE | re.MULTILINE)


def normalize_ai_txt(text: str) -> str:
    """ai.txt with bare patterns (``Disallow: images/``) rooted at ``/`` so robots.txt rules apply."""
    return _AITXT_RULE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
