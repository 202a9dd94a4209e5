"""Character sets and word lists used by the text filters (docs/reference.md §5.1, App. A).

``SPECIAL_CHARACTERS`` reproduces the original's set exactly: ``string.punctuation + digits +
whitespace``, the 188 extra symbols of OBELICS/BigScience ``filtering_utils`` (typographic quotes,
bullets, CJK punctuation, odd and zero-width spaces, C1 controls 0x91-0x9d, ...) and every key of
``emoji==1.6.1`` ``UNICODE_EMOJI['en']``: 4,934 entries in all.

Word lists come from one of two *sources*:

- ``obelics-2023``: the original lists (BigScience stop words, flagged words minus "cougar", the
  final-processing spam words with their typo, the image-URL ban substrings). They are looked up in
  ``$OBELICS_WORDLISTS``, then ``../shared/data/wordlists`` beside the checkout, then the resource cache
  filled by ``obelics resources fetch`` (:mod:`filters.resources`).
- ``registry``: lists from maintained PyPI packages: stop words from ``stop-words``, flagged words
  from ``better-profanity``'s word list minus ordinary words (:data:`FLAGGED_REGISTRY_EXCLUDED`);
  spam words are our corrected list (:data:`SPAM_WORDS_FIXED`).

A user list (a path in the profile) always wins. Text files hold one entry per line; ``.json``
files a list or a dict whose keys are the words (the format of the original ``common_words.json``).
"""

from __future__ import annotations

import functools
import json
import os
import string
from pathlib import Path

from filters.resources import ResourceMissing, cache_dir

# The extra symbols of the original SPECIAL_CHARACTERS (data, reproduced as in docs/reference.md §5.1).
_OTHER_SPECIAL_CHARACTERS = (
    "\u3000￼’“”–ー一▬…✦�£•€«»°·═×士＾˘⇓↓↑←→（）§″′´¿−±∈¢ø‚„½¼¾¹²³―⁃，ˌ¸‹›"
    "ʺˈʻ¦‐⠀‰‑≤≥‖◆●■►▼▲▴∆▻¡★☆✱ːº。¯˜¥ɪ≈†上ン：∼⁄・♡✓⊕․．⋅÷１‟；،、¨\u093e\u09be"
    "\u0940\u094d\u0947◦˚゜ʼ≖¤ッツシ℃√！【】‿∞➤～πه۩☛₨➩☻๑٪♥ıॽ《‘©﴿٬？▷Г♫∟™ª₪"
    "®「—❖」﴾》\u2009\u200a\u202f\u2005\u2002\u2008\u2003\u00a0\u00ad"
    "\u200b\ufeff\u0084\u0091\u0092\u0093\u0094\u0095\u0096\u0097\u0098"
    "\u0099\u009a\u009b\u009c\u009d"
)


def _build_special_characters() -> frozenset[str]:
    import emoji  # pinned to 1.6.1: its UNICODE_EMOJI['en'] keys are part of the original set

    chars = set(string.punctuation + string.digits + string.whitespace + _OTHER_SPECIAL_CHARACTERS)
    table = getattr(emoji, "UNICODE_EMOJI", None)
    keys = table["en"].keys() if table and "en" in table else emoji.EMOJI_DATA.keys()  # emoji>=2 fallback
    chars.update(keys)
    return frozenset(chars)


SPECIAL_CHARACTERS: frozenset[str] = _build_special_characters()

# docs/reference.md §5.1: the six punctuation marks counted by the punctuation ratio.
PUNCTUATION = frozenset(",;:?!.")

# docs/reference.md App. A.5 (original, case-sensitive substrings) — also shipped as image_url_ban_substrings.txt.
URL_BAN_WORDS_2023 = ("logo", "button", "icon", "plugin", "widget", "porn", "xxx", "sex")

# Our spam-word list for `default`: the original (App. A.4) with "newletter" corrected and the
# ordinary-prose words it wrongly counted removed (like, might, list, content, access, post, share,
# sign, interested, contact, account, follow, terms, download, loading, log, logged) (docs/reference.md §9 #17).
SPAM_WORDS_FIXED = (
    "facebook", "twitter", "instagram", "reddit", "youtube", "pinterest", "flickr", "tweet", "retweet",
    "comment", "comments", "subscribe", "newsletter", "blogger", "bloggers", "sign-up", "signup",
    "privacy", "policy", "website", "cookies", "cookie", "licensed", "password", "mailing", "click",
    "unsubscribe", "login",
)

# `better-profanity`'s list targets chat moderation, not adult content: it holds ordinary, medical,
# anatomical, identity, historical and substance words that would drop health, news and history text
# at a 1% flagged-word ratio (on the shared pages: "fat" 48 times, "god", "hitler", "pot", "sexual",
# "murder", "revue", ...). The `registry` flagged list is that list minus these words.
FLAGGED_REGISTRY_EXCLUDED = frozenset("""
arian aryan asanchez breasts crap damn dink dinks dong doofus dopey drunk dummy enlargement erect facial
fat flange foobar gai gay gays god guido hebe hell hemp heroin herpes hiv hitler homey hooch hookah hump
humped humping inbred jerk junkie junky kill klan kkk len leper lesbians lmao lmfao loin loins massa maxi
menses menstruate menstruation meth moron murder mutha muther naked napalm nazi nazism niggle nimrod nipple
nipples omg opiate opium oral orally organ ovary ovum ovums paddy pastie pasty pawn pcp pee penetrate
penetration pms pollock pot potty prude queer queers racy rectal rectum rectus reich revue rum sadism
sandbar schizo screw screwed screwing scum seaman seamen seduce sex sexual sissy slave slope sniper sodom
souse soused steamy stoned strip stroke stupid suck sucked sucking tampon tawdry thrust thug tinkle toots
tramp transsexual trashy ugly unwed urinal urine uterus uzi valium virgin vodka vomit vulgar wad wang weed
weirdo whiz womb woody wtf xx yury
""".split())

WORDLIST_FILES = {
    "stopwords": "stopwords_en.txt",
    "flagged_words": "flagged_words_en.txt",
    "spam_words": "spam_words_en.txt",
    "url_ban_words": "image_url_ban_substrings.txt",
}

_REPO_ROOT = Path(__file__).resolve().parent.parent


def wordlist_dirs() -> list[Path]:
    """Folders searched, in order, for the original (``obelics-2023``) word lists."""
    dirs = []
    if os.environ.get("OBELICS_WORDLISTS"):
        dirs.append(Path(os.environ["OBELICS_WORDLISTS"]))
    shared = Path(os.environ.get("OBELICS_SHARED", _REPO_ROOT.parent / "shared"))
    dirs.append(shared / "data" / "wordlists")
    dirs.append(cache_dir() / "wordlists")
    return dirs


def read_word_file(path: str | Path) -> list[str]:
    """Entries of a word-list file: one per line (blank lines skipped), or a JSON list / dict keys."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        return list(data.keys() if isinstance(data, dict) else data)
    return [line.strip() for line in text.splitlines() if line.strip()]


@functools.lru_cache(maxsize=64)
def _original_list(kind: str) -> tuple[str, ...]:
    name = WORDLIST_FILES[kind]
    for d in wordlist_dirs():
        p = d / name
        if p.is_file():
            return tuple(read_word_file(p))
    raise ResourceMissing(
        f"original word list {name} not found in {[str(d) for d in wordlist_dirs()]}; "
        "run `obelics resources fetch` (needs a network) or set OBELICS_WORDLISTS"
    )


@functools.lru_cache(maxsize=8)
def _registry_list(kind: str) -> tuple[str, ...]:
    if kind == "stopwords":
        from stop_words import get_stop_words

        return tuple(w.lower() for w in get_stop_words("en"))
    if kind == "flagged_words":
        import better_profanity

        p = Path(better_profanity.__file__).with_name("profanity_wordlist.txt")
        return tuple(w for w in (x.lower() for x in read_word_file(p)) if w not in FLAGGED_REGISTRY_EXCLUDED)
    if kind == "spam_words":
        return SPAM_WORDS_FIXED
    if kind == "url_ban_words":
        return URL_BAN_WORDS_2023
    raise ValueError(f"unknown word list {kind!r}")


def load_wordlist(kind: str, source: str, path: str | None = None) -> frozenset[str]:
    """The word set ``kind`` (stopwords, flagged_words, spam_words, url_ban_words).

    ``path`` (a user file) wins; else ``source`` is ``obelics-2023`` (the original lists) or
    ``registry`` (maintained packages / our corrected lists).
    """
    if path:
        return frozenset(_user_list(str(path)))
    if source == "obelics-2023":
        return frozenset(_original_list(kind))
    if source == "registry":
        return frozenset(_registry_list(kind))
    raise ValueError(f"unknown word-list source {source!r} (obelics-2023 or registry)")


@functools.lru_cache(maxsize=16)
def _user_list(path: str) -> tuple[str, ...]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"word list {path} does not exist")
    return tuple(read_word_file(path))
