"""Gap-free 6-day NDVI time series from Sentinel-1 and Sentinel-2."""

__version__ = "0.1.0"
