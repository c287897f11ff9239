"""Reports the collector renders for people: XLA reports as HTML documents and as PDF.

``pdf`` turns a finished HTML document into an A4 PDF with a headless Chromium; page size,
margins, running headers and page numbers come from the document's own ``@page`` CSS.
"""

__all__: list[str] = []
