"""Where scenes come from: one module per source, one :class:`Source` protocol."""

from pipeline.sources.base import Source

__all__ = ["Source"]
