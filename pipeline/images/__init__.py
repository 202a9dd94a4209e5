"""Image download (img2dataset), the offline WARC image source, the image table and the merge.

Kept import-free: img2dataset's spawned workers import ``pipeline.images.i2d_worker`` through this
package, and should not pay for pyarrow or PIL. Import the submodules directly.
"""
