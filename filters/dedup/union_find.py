"""Connected components of an edge list, vectorised with NumPy.

Hook-and-compress (Shiloach-Vishkin style) rather than a Python union-find: each round hooks the
larger root of every edge under the smaller, then jumps pointers to the root; the number of rounds
is logarithmic in the component diameter, and each round is a few NumPy passes over the edges.
(scipy's connected_components would do too, but scipy is not a declared dependency.)
"""

from __future__ import annotations

import numpy as np


def connected_components(num_nodes: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each node: the smallest node index in its component."""
    parent = np.arange(num_nodes, dtype=np.int64)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if len(a) == 0:
        return parent
    while True:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            return parent
        lo = np.minimum(pa[differ], pb[differ])
        hi = np.maximum(pa[differ], pb[differ])
        np.minimum.at(parent, hi, lo)
        while True:  # pointer jumping until every node points at a root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def components_of_ids(ids_a, ids_b) -> dict:
    """Components of an edge list over arbitrary hashable ids: {id: representative id}."""
    ids = list(dict.fromkeys(list(ids_a) + list(ids_b)))
    index = {x: i for i, x in enumerate(ids)}
    labels = connected_components(len(ids), np.fromiter((index[x] for x in ids_a), np.int64, len(ids_a)),
                                  np.fromiter((index[x] for x in ids_b), np.int64, len(ids_b)))
    return {x: ids[labels[i]] for i, x in enumerate(ids)}
