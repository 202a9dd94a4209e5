"""Image download (img2dataset), the offline WARC image source, the image table and the merge."""

from pipeline.images.config import ImagesConfig
from pipeline.images.table import IMAGE_TABLE_SCHEMA, ImageTable

__all__ = ["IMAGE_TABLE_SCHEMA", "ImageTable", "ImagesConfig"]
