"""``python -m train``: IDEFICS training on the pipeline's shards."""
