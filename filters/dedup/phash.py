"""Perceptual hash (pHash) of image bytes, and clusters of near-identical images (docs/reference.md §9.3 #13).

The original deduplicated images by URL only, so one picture under many URLs survived. Here each
downloaded image gets a 64-bit DCT pHash (the ``imagehash.phash`` recipe: grayscale, 32x32, 2-D DCT-II,
top-left 8x8 block thresholded at its median; imagehash is not a dependency, and the recipe is a few
NumPy lines), and images whose hashes differ in at most ``max_distance`` bits form one cluster.
Clusters map every URL to a canonical key that the image-URL frequency pass counts instead of the URL.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from filters.dedup.minhash import bucket_edges
from filters.dedup.union_find import connected_components


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * x + 1) * k / (2 * n))


@lru_cache(maxsize=1)
def _safe_formats() -> tuple[str, ...]:
    from filters.image import SAFE_DECODERS, open_formats

    return tuple(open_formats(SAFE_DECODERS))


def phash(image, hash_size: int = 8, highfreq_factor: int = 4) -> int | None:
    """64-bit pHash (for hash_size 8) of image bytes or a PIL image; None when it cannot be decoded.

    Bytes are opened only by the image filters' safe decoders (:data:`filters.image.SAFE_DECODERS`): web
    bytes claiming to be EPS would otherwise be handed to Ghostscript, where it is installed.
    """
    from PIL import Image

    size = hash_size * highfreq_factor
    try:
        img = image if isinstance(image, Image.Image) else Image.open(io.BytesIO(image), formats=_safe_formats())
        img = img.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    except Exception:  # undecodable bytes are skipped by the caller, not fatal
        return None
    pixels = np.asarray(img, dtype=np.float64)
    d = _dct_matrix(size)
    low = (d @ pixels @ d.T)[:hash_size, :hash_size]
    bits = (low > np.median(low)).reshape(-1)
    return int(np.packbits(bits).view(">u8")[0]) if hash_size == 8 else int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return int(a ^ b).bit_count()


def band_keys(hs: np.ndarray, max_distance: int) -> np.ndarray:
    """The pigeonhole band keys of 64-bit hashes ``hs``: shape (bands, len(hs)), ``max_distance + 1`` bands of
    the 64 bits (two hashes within the distance agree exactly on at least one band); a key holds its band
    index, so equal keys are in the same band."""
    nb = max_distance + 1
    width = 64 // nb
    keys = np.empty((nb, len(hs)), np.uint64)
    for band in range(nb):
        lo = band * width
        bits = 64 - lo if band == nb - 1 else width
        mask = np.uint64((1 << bits) - 1)
        keys[band] = ((hs >> np.uint64(lo)) & mask) * np.uint64(nb) + np.uint64(band)
    return keys


def within(x: np.ndarray, y: np.ndarray, max_distance: int) -> np.ndarray:
    """Whether each pair of 64-bit hashes differs in at most ``max_distance`` bits."""
    d = np.ascontiguousarray(x ^ y, dtype=np.uint64)
    return np.unpackbits(d.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1) <= max_distance


def phash_clusters(urls: list[str], hashes: list[int | None], max_distance: int = 4) -> dict[str, str]:
    """{url: canonical url} for images within ``max_distance`` bits of another (only clustered URLs).

    Candidates come from splitting the 64 bits into ``max_distance + 1`` bands (:func:`band_keys`);
    candidates (:func:`filters.dedup.minhash.bucket_edges`: each bucket's members linked to its first and
    to the next, in input order) are confirmed by their Hamming distance and joined into components. The
    canonical URL is the smallest of a cluster. The one-process reference: a run finds the same clusters
    in tasks (:mod:`pipeline.images.phash_tasks`).
    """
    pairs = [(u, h) for u, h in zip(urls, hashes) if h is not None and u is not None]
    if len(pairs) < 2:
        return {}
    us = [u for u, _ in pairs]
    hs = np.array([h for _, h in pairs], dtype=np.uint64)
    keys = band_keys(hs, max_distance)
    members = np.tile(np.arange(len(hs)), len(keys))
    a, b = bucket_edges(keys.reshape(-1), members)
    if len(a):
        ok = within(hs[a], hs[b], max_distance)
        a, b = a[ok], b[ok]
    labels = connected_components(len(hs), a, b)
    sizes = np.bincount(labels, minlength=len(hs))
    canon: dict[int, str] = {}
    for i in np.flatnonzero(sizes[labels] > 1):
        lab = labels[i]
        canon[lab] = min(canon.get(lab, us[i]), us[i])
    return {us[i]: canon[labels[i]] for i in np.flatnonzero(sizes[labels] > 1)}


def canonical_image_keys(urls: list[str], images: list[bytes | None], max_distance: int = 4,
                         hash_size: int = 8) -> dict[str, str]:
    """{url: canonical url} for downloaded images (``images[i]`` the bytes of ``urls[i]``, None if missing).

    Pass the result as ``canonical`` to the image-URL frequency pass so that the same picture under
    several URLs is counted as one image.
    """
    hashes = [phash(b, hash_size) if b else None for b in images]
    return phash_clusters(urls, hashes, max_distance)
