"""PDF text layer extraction, isolated in a child process with time and memory limits.

Why not in-process: pypdf is pure Python and hardened, but a hostile file can still make it
allocate or spin; in a Celery worker that would take every task of the worker down with it.
Why `subprocess` and not `multiprocessing`: spawn/forkserver re-import the parent's `__main__`
(gunicorn, celery, manage.py) and Celery's prefork children are daemonic and may not have
children; a plain script run with `python -I` has neither problem and starts in ~0.2 s.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import PDF_MALFORMED, PDF_MEMORY, PDF_TIMEOUT, NoText, ParseError
from .normalise import clean_text
from .pdf_child import EXIT_MEMORY
from .structure import APPLICATION_PDF, ParsedDocument, clip_title, split_paragraphs

CHILD_SCRIPT = Path(__file__).with_name("pdf_child.py")

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_PAGES = 1000
DEFAULT_MAX_CHARS = 5_000_000

_HYPHENATED_BREAK = re.compile(r"(\w)-\n(?=[a-z])")
_BULLET = re.compile(r"^(?:[\u2022\u25aa\u25e6\u2013\u2023\u2043*-]|\(?\d{1,3}[.)])\s")
_DIGITS = re.compile(r"\d+")
_SHORT_LINE_RATIO = 0.7
_RUNNING_LINES = 2  # lines at each end of a page that may be a running header or footer
_PDF_HEADER = re.compile(rb"\A(?:\xef\xbb\xbf)?[\x00\s]*%PDF-")


@dataclass(frozen=True, slots=True)
class PdfText:
    title: str
    pages: list[str]
    truncated: bool


def is_pdf(data: bytes) -> bool:
    """The `%PDF-` magic at the start (after an optional BOM or whitespace)."""
    return _PDF_HEADER.match(data[:1024]) is not None


def parse_pdf_guarded(
    data: bytes,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> PdfText:
    """Extract the text layer of each page in a child process.

    The child is killed after `timeout_s` seconds of wall-clock time and cannot map more than
    `memory_mb` MiB (RLIMIT_AS). Pages past `max_pages` and characters past `max_chars` are
    dropped and reported as `truncated`. Raises ParseError with code pdf_timeout, pdf_memory
    or pdf_malformed.
    """
    command = [
        sys.executable,
        "-I",  # isolated: no PYTHON* variables, no user site, no script dir on sys.path
        str(CHILD_SCRIPT),
        f"--memory-mb={int(memory_mb)}",
        f"--cpu-s={math.ceil(timeout_s) + 1}",
        f"--max-pages={int(max_pages)}",
        f"--max-chars={int(max_chars)}",
    ]
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv of our own script, no shell
            command,
            input=data,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env={"LC_ALL": "C.UTF-8"},  # nothing of ours (DSNs, keys) reaches the parser
        )
    except subprocess.TimeoutExpired as exc:  # run() has already killed and reaped the child
        raise ParseError(PDF_TIMEOUT, f"PDF parsing exceeded {timeout_s:g} s") from exc
    return _read_reply(completed, memory_mb=memory_mb)


def _read_reply(completed: subprocess.CompletedProcess, *, memory_mb: int) -> PdfText:
    code = completed.returncode
    stderr_tail = completed.stderr[-2000:].decode("utf-8", "replace")
    if code == EXIT_MEMORY or "MemoryError" in stderr_tail or code == -signal.SIGKILL:
        raise ParseError(PDF_MEMORY, f"PDF parsing exceeded {memory_mb} MiB")
    if code == -signal.SIGXCPU:
        raise ParseError(PDF_TIMEOUT, "PDF parsing exceeded its CPU time")
    if code != 0:
        last_line = stderr_tail.strip().splitlines()[-1:] or [f"exit status {code}"]
        raise ParseError(PDF_MALFORMED, f"PDF parser failed: {last_line[0][:300]}")
    try:
        reply = json.loads(completed.stdout)
    except ValueError as exc:
        raise ParseError(PDF_MALFORMED, "PDF parser returned no result") from exc
    if not reply.get("ok"):
        raise ParseError(reply.get("code", PDF_MALFORMED), reply.get("message", ""))
    return PdfText(
        title=str(reply.get("title") or ""),
        pages=[str(page) for page in reply.get("pages", [])],
        truncated=bool(reply.get("truncated")),
    )


def pdf_document(
    data: bytes,
    *,
    timeout_s: float,
    memory_mb: int,
    max_pages: int,
    max_chars: int,
) -> ParsedDocument:
    """Blocks from the text layer: pages are paragraph boundaries, blank lines too; words a
    line break hyphenated are joined again. PDFs carry no reliable heading structure."""
    extracted = parse_pdf_guarded(
        data, timeout_s=timeout_s, memory_mb=memory_mb, max_pages=max_pages, max_chars=max_chars
    )
    pages = _drop_running_lines([clean_text(page) for page in extracted.pages])
    blocks = []
    for page in pages:
        text = _HYPHENATED_BREAK.sub(r"\1", page)
        blocks.extend(split_paragraphs(_mark_paragraphs(text)))
    if not blocks:
        raise NoText(message="the PDF has no text layer (scanned images need OCR)")
    return ParsedDocument(
        mime_type=APPLICATION_PDF,
        title=clip_title(clean_text(extracted.title)),
        blocks=blocks,
        truncated=extracted.truncated,
    )


def _mark_paragraphs(page: str) -> str:
    """Text layers put a line break after every printed line and rarely a blank line between
    paragraphs. A line clearly shorter than the page's long lines ends a paragraph (this also
    isolates headings); a bullet or number starts one. Blank lines mark the breaks."""
    lines = [line.strip() for line in page.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if len(lengths) < 3:
        return page
    short = lengths[int(len(lengths) * 0.9)] * _SHORT_LINE_RATIO
    out: list[str] = []
    for index, line in enumerate(lines):
        if index and out[-1] and line and _BULLET.match(line):
            out.append("")
        out.append(line)
        if line and len(line) < short:
            out.append("")
    return "\n".join(out)


def _drop_running_lines(pages: list[str]) -> list[str]:
    """Drop running headers and footers: a line at the top or bottom of at least half of the
    pages (page numbers compared without their digits). They would repeat in every chunk."""
    if len(pages) < 3:
        return pages
    split = [page.strip().split("\n") for page in pages]
    counts: dict[str, int] = {}
    for lines in split:
        edge = {_DIGITS.sub("#", line.strip()) for line in lines[:_RUNNING_LINES]}
        edge |= {_DIGITS.sub("#", line.strip()) for line in lines[-_RUNNING_LINES:]}
        for key in edge - {""}:
            counts[key] = counts.get(key, 0) + 1
    running = {key for key, count in counts.items() if count * 2 >= len(pages)}
    if not running:
        return pages
    cleaned = []
    for lines in split:
        last = len(lines) - _RUNNING_LINES
        cleaned.append(
            "\n".join(
                line
                for index, line in enumerate(lines)
                if not (
                    (index < _RUNNING_LINES or index >= last)
                    and _DIGITS.sub("#", line.strip()) in running
                )
            )
        )
    return cleaned
