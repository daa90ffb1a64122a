"""Bytes to clean Unicode: charset detection, mojibake repair, control characters, NFC.

Why this order: decode with the best evidence first (BOM, valid UTF-8, a declared charset,
then statistics); repair mojibake (UTF-8 read as cp1252 somewhere upstream) with ftfy; only
then drop control characters and compose to NFC so equal text is equal bytes for dedup and
tokenization.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

import charset_normalizer
import ftfy

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})"""
    rb"""|<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})""",
    re.IGNORECASE,
)
# C0 controls except \t and \n (\r and \f are turned into line breaks first), DEL, C1
# controls, lone surrogates, BOM/zero-width no-break space and soft hyphens.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\u00ad]")
_BINARY_SAMPLE = 1024
_BINARY_CONTROL_RATIO = 0.10
# Western text is the common case and cp1252 is the web's fallback (WHATWG); charset
# statistics on short Western text often pick a Baltic or Central European code page.
_PREFERRED_LEGACY = "cp1252"
_PREFERENCE_MARGIN = 0.1

_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # markup is the HTML parser's job; code samples keep their entities
    uncurl_quotes=False,  # typography is content
    fix_character_width=False,  # full-width CJK punctuation is correct as it is
    explain=False,
)


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Return (text, encoding). Never raises: undecodable bytes become U+FFFD."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = _declared_charset(data)
    if declared:
        try:
            return data.decode(declared), declared
        except (UnicodeDecodeError, LookupError):
            pass
    guess = _guess_charset(data)
    if guess:
        return data.decode(guess, errors="replace"), guess
    return data.decode("utf-8", errors="replace"), "utf-8"


def _declared_charset(data: bytes) -> str | None:
    match = _DECLARED_CHARSET.search(data[:4096])
    if not match:
        return None
    name = (match.group(1) or match.group(2)).decode("ascii").lower()
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _guess_charset(data: bytes) -> str | None:
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    if _PREFERRED_LEGACY in best.could_be_from_charset:
        return _PREFERRED_LEGACY
    for match in matches:
        if match.encoding == _PREFERRED_LEGACY and match.chaos <= best.chaos + _PREFERENCE_MARGIN:
            return _PREFERRED_LEGACY
    return best.encoding


def looks_binary(data: bytes, text: str, encoding: str) -> bool:
    """Binary content that is neither a known format nor text: NUL bytes in the first KB that
    no Unicode decoding explains (UTF-16/32 have them legitimately, and valid UTF-8 keeps
    them as characters we strip), or text that is mostly control or replacement characters."""
    unicode_encoding = encoding.replace("_", "-").startswith("utf-")
    if b"\x00" in data[:_BINARY_SAMPLE] and not unicode_encoding:
        return True
    sample = text[:_BINARY_SAMPLE]
    if not sample:
        return False
    odd = sum(1 for char in sample if char == "\ufffd" or _is_control(char))
    return odd / len(sample) > _BINARY_CONTROL_RATIO


def _is_control(char: str) -> bool:
    # NUL is left out: in valid UTF-8 it is stripped later (UTF-16 without a BOM reads so).
    return unicodedata.category(char) == "Cc" and char not in "\x00\t\n\r\f"


def is_blank(text: str) -> bool:
    """Whether nothing but whitespace and the characters clean_text drops is left."""
    return not _CONTROL.sub("", text).strip()


def clean_text(text: str) -> str:
    """Repair mojibake, unify line breaks, drop control characters, compose to NFC."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\f", "\n\n").replace("\v", "\n").replace("\u2028", "\n")
    text = text.replace("\u2029", "\n\n")
    if not text.isascii():
        text = ftfy.fix_text(text, _FTFY_CONFIG)  # before dropping C1 controls it may need
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)
