"""Child process that extracts a PDF's text layer with pypdf, under resource limits.

Run by `rag.parsing.pdf.parse_pdf_guarded` as `python -I pdf_child.py ...` with the PDF on
stdin; writes one JSON object on stdout. Why a separate script: a hostile PDF (decompression
bomb, cyclic object graph, pathological content stream) may exhaust memory or loop, and the
kernel can only contain that in another process. It imports nothing from the project (no
Django, no settings, no secrets in its environment) so it starts fast and sees only the bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

EXIT_MEMORY = 3  # MemoryError: the address-space limit was hit
MB = 1024 * 1024


def limit_resources(*, memory_mb: int, cpu_s: int) -> None:
    """Cap address space (RLIMIT_AS) and CPU time. The CPU cap is a backstop in case the parent
    dies before it can kill us on its wall-clock timeout."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MB, memory_mb * MB))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def extract(data: bytes, *, max_pages: int, max_chars: int) -> dict:
    import io
    import logging

    from pypdf import PdfReader

    logging.disable(logging.WARNING)  # pypdf warns per broken object; stderr is not read
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:  # DependencyError (AES needs cryptography), bad keys
            return error("pdf_malformed", f"encrypted PDF cannot be opened: {exc}")
        if not opened:
            return error("pdf_malformed", "encrypted PDF needs a password")
    title = ""
    try:
        metadata = reader.metadata
        title = str(metadata.title or "") if metadata else ""
    except Exception:  # noqa: S110 - a broken /Info dictionary must not lose the text
        pass
    pages: list[str] = []
    chars = 0
    truncated = False
    for index, page in enumerate(reader.pages):
        if index >= max_pages:
            truncated = True
            break
        text = page.extract_text() or ""
        if chars + len(text) > max_chars:
            pages.append(text[: max_chars - chars])
            truncated = True
            break
        chars += len(text)
        pages.append(text)
    return {"ok": True, "title": title, "pages": pages, "truncated": truncated}


def error(code: str, message: str) -> dict:
    return {"ok": False, "code": code, "message": message[:500]}


def classify(exc: BaseException) -> dict:
    from pypdf.errors import LimitReachedError

    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, LimitReachedError):
        lowered = str(exc).lower()
        if "cycl" in lowered or "loop" in lowered:
            return error("pdf_malformed", message)
        return error("pdf_memory", message)
    return error("pdf_malformed", message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-s", type=int, required=True)
    parser.add_argument("--max-pages", type=int, required=True)
    parser.add_argument("--max-chars", type=int, required=True)
    args = parser.parse_args(argv)
    limit_resources(memory_mb=args.memory_mb, cpu_s=args.cpu_s)
    try:
        data = sys.stdin.buffer.read()
        result = extract(data, max_pages=args.max_pages, max_chars=args.max_chars)
    except MemoryError:
        os._exit(EXIT_MEMORY)  # building a reply could itself fail: the exit code says it
    except Exception as exc:  # anything pypdf raises on a broken file
        result = classify(exc)
    # ASCII JSON: lone surrogates from broken font maps survive the trip.
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
