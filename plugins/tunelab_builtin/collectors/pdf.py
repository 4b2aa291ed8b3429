"""The ``pdf`` collector: PDF text per file or per page with pypdf.

Encrypted files that the configured password does not open, broken files, and a file
or page that yields no text are quarantined with the reason; they never stop the run.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tunelab.api import TEXT, StageContext
from tunelab_builtin.collectors._files import FileCollector
from tunelab_builtin.collectors._records import TITLE, PathConfig, require_module

PDF_UNITS = ("file", "page")


@dataclass
class PdfSourceConfig(PathConfig):
    #: one row per file (pages joined by a blank line) or per page
    unit: str = "file"
    #: password for encrypted PDFs (removed from saved configs); files it does not open are quarantined
    password: str = ""


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    # pypdf logs a warning for every recoverable defect; the quarantine already says what matters
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class PdfCollector(FileCollector):
    """PDF text with pypdf, one row per file or per page; encrypted or broken files are quarantined."""

    suffixes = (".pdf",)

    def __init__(self, config: PdfSourceConfig):
        super().__init__(config)
        if config.unit not in PDF_UNITS:
            raise ValueError(f"data.unit must be one of {', '.join(PDF_UNITS)}, got {config.unit!r}")

    def raw_records(self, ctx):
        require_module("pypdf", "pdf", "pypdf")
        yield from super().raw_records(ctx)

    def _pages(self, data: bytes, label: str, ctx: StageContext) -> tuple[str | None, list[str]] | None:
        """(title, text of each page), or None when the file was quarantined."""
        from pypdf import PdfReader
        from pypdf.errors import DependencyError

        try:
            with _quiet_pypdf():
                reader = PdfReader(io.BytesIO(data))
                if reader.is_encrypted and not reader.decrypt(self.config.password):
                    hint = "set data.password" if not self.config.password else "data.password does not open it"
                    ctx.quarantine(label, None, f"encrypted PDF; {hint}")
                    return None
                try:
                    title = reader.metadata.title if reader.metadata else None
                except Exception:  # noqa: BLE001 - damaged metadata must not cost the text
                    title = None
                return (str(title) if title else None), [(page.extract_text() or "").strip() for page in reader.pages]
        except DependencyError as exc:
            ctx.quarantine(label, None, f"cannot decrypt this PDF: {exc} (pip install cryptography)")
        except Exception as exc:  # noqa: BLE001 - pypdf raises many types for damaged files
            ctx.quarantine(label, None, f"not a readable PDF ({type(exc).__name__}: {exc})")
        return None

    def read(self, file, label, ctx):
        parsed = self._pages(self.read_bytes(file), label, ctx)
        if parsed is None:
            return
        title, pages = parsed
        if self.config.unit == "file":
            text = "\n\n".join(page for page in pages if page)
            if not text:
                ctx.quarantine(
                    label, None, f"no extractable text in any of its {len(pages)} pages (scanned images need OCR first)"
                )
                return
            yield 1, {TEXT: text, TITLE: title, "pages": len(pages)}
            return
        for number, text in enumerate(pages, start=1):
            if text:
                yield number, {TEXT: text, TITLE: title, "page": number}
            else:
                ctx.quarantine(label, number, "no extractable text on this page (a scanned image needs OCR first)")
