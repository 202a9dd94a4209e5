"""Benchmark scores: VQA accuracy (VQAv2's official normalisation and 10-annotator accuracy) and CIDEr-D.

VQA: written here because the official scorer (``vqaEval.py`` of the VQA API) is a script in a repository,
not a package; this is a line-by-line port of its ``evaluate``: the prediction is cleaned of newlines and
tabs; **when the ten human answers are not unanimous** the answers get the punctuation pass and the prediction
the punctuation, number-word, article and contraction passes (the official scorer's behaviour, kept so that
numbers compare with published ones); the accuracy of a prediction is the mean over the ten leave-one-out
subsets of min(1, matches among the other nine / 3), i.e. "min(#humans that said it / 3, 1)" averaged over
the 10-choose-9 annotator sets (Antol et al. 2015; Goyal et al. 2017).

CIDEr-D: ``pycocoevalcap`` (the COCO caption evaluation package) computes it (n = 1..4, tf-idf over the
evaluated set's references, clipped counts, Gaussian length penalty σ = 6, × 10; Vedantam et al. 2015). Its
usual tokenizer is Stanford's PTB tokenizer, a Java program; :func:`ptb_tokenize` does the same lowercasing,
punctuation splitting and punctuation removal in Python so that no Java is needed.
"""

from __future__ import annotations

import re

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
           "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern (a period not followed by a digit)
_COMMA = re.compile(r"(\d)(\,)(\d)")


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``: a mark next to a space (or any mark in a text with a digit comma
    like ``1,000``) is deleted, otherwise replaced by a space; periods not before a digit are deleted."""
    out = text
    for p in PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lowercase, number words → digits, no articles, contractions fixed."""
    words = [NUMBERS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text: str) -> str:
    """A prediction as the official scorer compares it when the human answers differ."""
    return process_digit_article(process_punctuation(text.replace("\n", " ").replace("\t", " ").strip()))


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQAv2 accuracy of one prediction against its (ten) human answers, as the official ``evaluate``."""
    pred = prediction.replace("\n", " ").replace("\t", " ").strip()
    gts = list(answers)
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
        pred = process_digit_article(process_punctuation(pred))
    accs = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        accs.append(min(1.0, sum(a == pred for a in others) / 3))
    return sum(accs) / len(accs) if accs else 0.0


# The PTB tokenizer's punctuation tokens that the COCO caption evaluation drops after tokenizing.
PTB_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                   "...", ";"}
_PTB_TOKEN = re.compile(r"\.\.\.|--|``|''|n't\b|'(?:s|re|ve|ll|d|m)\b|[a-z0-9]+(?:[.,][0-9]+)*|\S")
_PTB_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-", "[": "-LSB-", "]": "-RSB-"}


def ptb_tokenize(text: str) -> str:
    """Lowercased and split as the PTB tokenizer does (clitics ``'s`` / ``n't`` apart, brackets named), then the
    COCO evaluation's punctuation tokens dropped."""
    t = re.sub(r"n't\b", " n't", text.lower().replace("\n", " "))
    t = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", t)
    toks = [_PTB_BRACKETS.get(x, x) for x in _PTB_TOKEN.findall(t)]
    return " ".join(x for x in toks if x not in PTB_PUNCTUATION)


def cider_d(predictions: dict, references: dict) -> tuple[float, dict]:
    """(corpus CIDEr-D, per-id scores) of ``predictions`` {id: caption} against ``references`` {id: [captions]}
    with pycocoevalcap's scorer after :func:`ptb_tokenize`; idf comes from the references of these ids."""
    from pycocoevalcap.cider.cider import Cider

    ids = list(predictions)
    if not ids:
        return 0.0, {}
    res = {i: [ptb_tokenize(predictions[i])] for i in ids}
    gts = {i: [ptb_tokenize(r) for r in references[i]] for i in ids}
    score, scores = Cider().compute_score(gts, res)
    return float(score), {i: float(s) for i, s in zip(ids, scores)}
