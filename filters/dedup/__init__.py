"""Deduplication algorithms: URL, image-URL frequency, paragraphs per domain, set of images, MinHash."""
