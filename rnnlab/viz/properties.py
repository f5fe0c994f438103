"""Simple properties of a text, one number per character, for finding the hidden units that track them.

Each function takes the text and returns a float array (N,) whose value at position t describes the
text up to and including character t (the state the network is in after reading it). The explorer
correlates every unit's activation with each property (Pearson r) and ranks the units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

QUOTES = {'"': '"', "\u201c": "\u201d"}
OPENING = {"(": ")", "[": "]", "{": "}"}


def inside_quotes(text: str) -> np.ndarray:
    """1 between an opening double quote and its closing one (the quote characters included)."""
    out = np.zeros(len(text))
    closing = None
    for t, ch in enumerate(text):
        if closing is None and ch in QUOTES:
            closing = QUOTES[ch]
            out[t] = 1
        elif closing is not None:
            out[t] = 1
            if ch == closing:
                closing = None
    return out


def bracket_depth(text: str) -> np.ndarray:
    """How many (, [ or { are open at t (a bracket counts from itself to its closing partner)."""
    out = np.zeros(len(text))
    depth = 0
    for t, ch in enumerate(text):
        if ch in OPENING:
            depth += 1
        out[t] = depth
        if ch in OPENING.values() and depth > 0:
            depth -= 1
    return out


def position_in_line(text: str) -> np.ndarray:
    """Characters since the last newline (0 for the newline itself)."""
    out = np.zeros(len(text))
    pos = 0
    for t, ch in enumerate(text):
        pos = 0 if ch == "\n" else pos + 1
        out[t] = pos
    return out


def indentation(text: str) -> np.ndarray:
    """Leading spaces of the current line (a tab counts as 4), once they have been read."""
    out = np.zeros(len(text))
    indent, leading = 0, True
    for t, ch in enumerate(text):
        if ch == "\n":
            indent, leading = 0, True
        elif leading and ch in " \t":
            indent += 4 if ch == "\t" else 1
        else:
            leading = False
        out[t] = indent
    return out


def start_of_word(text: str) -> np.ndarray:
    """1 at a letter that follows a non-letter (or starts the text)."""
    return np.array([float(ch.isalpha() and (t == 0 or not text[t - 1].isalpha())) for t, ch in enumerate(text)])


def end_of_sentence(text: str) -> np.ndarray:
    """1 at '.', '!' or '?'."""
    return np.array([float(ch in ".!?") for ch in text])


def after_newline(text: str) -> np.ndarray:
    """1 at a newline: the model must predict the first character of the next line."""
    return np.array([float(ch == "\n") for ch in text])


def all_caps_line(text: str) -> np.ndarray:
    """1 while the current line has been upper case so far, with at least one letter
    (the speaker names of a play: "ROMEO:")."""
    out = np.zeros(len(text))
    caps, letters = True, 0
    for t, ch in enumerate(text):
        if ch == "\n":
            caps, letters = True, 0
            continue
        if ch.isalpha():
            letters += 1
            caps = caps and ch.isupper()
        out[t] = float(caps and letters > 0)
    return out


def is_vowel(text: str) -> np.ndarray:
    return np.array([float(ch.lower() in "aeiou") for ch in text])


def is_space(text: str) -> np.ndarray:
    return np.array([float(ch == " ") for ch in text])


PROPERTIES: dict[str, Callable[[str], np.ndarray]] = {
    "inside quotes": inside_quotes,
    "inside brackets": bracket_depth,
    "position in line": position_in_line,
    "indentation depth": indentation,
    "start of word": start_of_word,
    "end of sentence": end_of_sentence,
    "newline": after_newline,
    "all-caps line (speaker name)": all_caps_line,
    "vowel": is_vowel,
    "space": is_space,
}


def correlations(activations: np.ndarray, prop: np.ndarray) -> np.ndarray:
    """Pearson r of every unit (columns of ``activations``, (N, H)) with ``prop`` (N,); 0 where either is constant."""
    a = activations - activations.mean(0)
    p = prop - prop.mean()
    denom = np.sqrt((a * a).sum(0) * (p * p).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * p[:, None]).sum(0) / denom
    return np.nan_to_num(r)
