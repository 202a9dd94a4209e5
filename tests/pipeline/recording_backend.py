"""A shuffle backend for tests of what reaches the driver: the local backend, recording what is put
(broadcast) and the pickled size of everything put or returned to the driver."""

import pickle

from pipeline.shuffle import LocalBackend


class RecordingBackend:
    name = "local"

    def __init__(self):
        self.inner = LocalBackend()
        self.puts: list = []
        self.sizes: list[int] = []

    def _seen(self, x):
        self.sizes.append(len(pickle.dumps(x)))
        return x

    def put(self, value):
        self.puts.append(value)
        return self.inner.put(self._seen(value))

    def map(self, fn, calls):
        return [self._seen(r) for r in self.inner.map(fn, calls)]

    def imap(self, fn, calls):
        return (self._seen(r) for r in self.inner.imap(fn, calls))

    def map_unordered(self, fn, calls, on_result):
        return self.inner.map_unordered(fn, calls, lambda r: on_result(self._seen(r)))
