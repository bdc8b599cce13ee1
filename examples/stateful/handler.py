"""A stateful TorchServe handler, after TorchServe's examples/stateful: each request's body is
a whole number, and the answer is the running sum of its sequence so far.

The sums live in this worker's memory, keyed by the sequence id (``context.get_sequence_id``);
the server sends every request of a sequence to the same worker, in order, and marks a
sequence's first request with ``ts_request_sequence_start: true``. A sequence that expires is
not announced to the handler, so the sums are kept in a bounded LRU cache, as TorchServe's
example keeps them (its capacity from the model config: ``handler: {cache: {capacity: N}}``).
"""

from collections import OrderedDict

DEFAULT_CAPACITY = 10


class RunningSum:
    def __init__(self):
        self.sums = OrderedDict()
        self.capacity = DEFAULT_CAPACITY
        self.initialized = False

    def initialize(self, context):
        cache = (context.model_yaml_config.get("handler") or {}).get("cache") or {}
        self.capacity = int(cache.get("capacity", DEFAULT_CAPACITY))
        self.initialized = True

    def handle(self, data, context):
        answers = []
        for index, row in enumerate(data):
            sequence = context.get_sequence_id(index)
            if context.get_request_header(index, "ts_request_sequence_start") == "true":
                self.sums[sequence] = 0
            total = self.sums.pop(sequence, 0) + int(row.get("data") or row.get("body"))
            self.sums[sequence] = total  # the most recent last
            while len(self.sums) > self.capacity:
                self.sums.popitem(last=False)
            answers.append(total)
        return answers
