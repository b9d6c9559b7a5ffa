"""How many tokens CLIP's byte-pair encoder makes of a prompt, without importing torch.

OpenAI CLIP's tokenizer (the `clip.tokenize` DD calls, and open_clip's `SimpleTokenizer`, which
disco-spec's encoder uses) works in four steps: clean the text (ftfy's `fix_text`, HTML entities
unescaped twice, whitespace collapsed, lower case), split it into words with one regular
expression, spell each word's UTF-8 bytes with printable stand-in characters, then merge adjacent
symbols by the ranked merge list in `bpe_simple_vocab_16e6.txt.gz` until no listed pair is left.
Each remaining symbol is one token. This module does the same with the standard library plus the
two small packages the tokenizer itself needs (`regex` for Unicode classes, `ftfy`), reading the
merge list from open_clip's installed package data, so `disco-spec validate` stays fast on a render
install (importing open_clip imports torch and torchvision: seconds). tests/test_clip_bpe.py
compares the counts with open_clip's tokenizer over many prompts.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Callable

__all__ = ["BpeCounter", "open_clip_vocab_path", "token_counter"]

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
# CLIP's vocabulary is 49408 ids: 256 byte symbols, the same 256 as word ends, the merges, and the
# start/end tokens; so the file's first line (a header) is followed by 49408 - 512 - 2 merges.
N_MERGES = 49408 - 512 - 2
# open_clip's start and end tokens: written in a prompt, each is one token, never split.
_SPECIAL = ("<start_of_text>", "<end_of_text>")
# Words as CLIP splits them: the special tokens, English contractions, letter runs, single digits, runs
# of other non-space characters.
_WORD_PATTERN = "|".join(_SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_END = "</w>"


def _byte_symbols() -> list[str]:
    """The printable character CLIP's vocabulary uses for each byte value 0..255.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes are given the code points from 256
    upwards in byte order, so no symbol is whitespace or a control character.
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def open_clip_vocab_path() -> Path | None:
    """open_clip's merge list, located without importing open_clip (None where it is not installed)."""
    try:
        found = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    for folder in (found.submodule_search_locations or []) if found else []:
        candidate = Path(folder) / VOCAB_FILE
        if candidate.is_file():
            return candidate
    return None


class BpeCounter:
    """Counts CLIP BPE tokens of a text (without the start and end tokens)."""

    def __init__(self, vocab_path: str | Path):
        import ftfy
        import regex

        self._fix_text = ftfy.fix_text
        self._words = regex.compile(_WORD_PATTERN, regex.IGNORECASE)
        # Only the header and the merges are read: the file goes on with lines CLIP never uses.
        lines = gzip.decompress(Path(vocab_path).read_bytes()).split(b"\n", N_MERGES + 1)
        merges = b"\n".join(lines[1 : N_MERGES + 1]).decode("utf-8").split("\n")
        # Keyed by the file's own "left right" line: symbols never hold a space, and building the
        # table from the lines as they are keeps loading it a few milliseconds.
        self._rank: dict[str, int] = dict(zip(merges, range(N_MERGES)))
        self._byte = _byte_symbols()
        self._pieces: dict[str, int] = {}

    def clean(self, text: str) -> str:
        text = html.unescape(html.unescape(self._fix_text(text))).strip()
        return " ".join(text.split()).lower()

    def word_pieces(self, word: str) -> int:
        """How many symbols are left of one (byte-spelled) word once every ranked merge is applied."""
        known = self._pieces.get(word)
        if known is not None:
            return known
        symbols = [*word[:-1], word[-1] + _END]
        while len(symbols) > 1:
            # The adjacent pair with the lowest rank merges first, at every place it occurs.
            ranked = [(rank, a, b) for a, b in zip(symbols, symbols[1:])
                      if (rank := self._rank.get(f"{a} {b}")) is not None]
            if not ranked:
                break
            _, left, right = min(ranked)
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._pieces[word] = len(symbols)
        return len(symbols)

    def count(self, text: str) -> int:
        total = 0
        for word in self._words.findall(self.clean(text)):
            if word in _SPECIAL:
                total += 1
                continue
            total += self.word_pieces("".join(self._byte[b] for b in word.encode("utf-8")))
        return total


@lru_cache(maxsize=1)
def token_counter() -> Callable[[str], int] | None:
    """Tokens of a prompt including CLIP's start and end tokens; None where the tokenizer's files or
    packages are not installed (a validate-only install: the encoder still refuses a long prompt)."""
    path = open_clip_vocab_path()
    if path is None:
        return None
    try:
        counter = BpeCounter(path)
    except ImportError:
        return None
    return lambda text: counter.count(text) + 2
