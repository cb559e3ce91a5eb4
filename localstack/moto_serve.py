"""moto_server with DynamoDB requests handled one at a time, and two fixes of its Query.

moto's server answers each request on its own thread, and its DynamoDB backend changes
items without a lock: two UpdateItem calls on one item at the same moment can each read
the old value, so an `ADD` is lost or a condition that should fail passes. Real DynamoDB
applies writes to an item one after another, and the engine counts on that (conditional
end of a subtask, `ADD` of the task's counters). Here every DynamoDB request takes one
lock; other services (SQS long polls above all) still run side by side.

Query fixes, both keeping moto's answers as they are:

* Page size of an index query. DynamoDB's 1 MB page limit counts the data read from the
  index, i.e. the projected items; moto counts the whole table item. A keys-only index
  over items with 2 KB descriptors therefore paged ~400 ids at a time instead of
  thousands. Here the size of an index item is the size of its projection.
* Sorting cost. moto sorts the whole table (and then the partition) on every Query page,
  comparing its typed values in Python; with 200,000 items a page took ~7 s. Sorting by
  the plain Python values gives the same order (DynamoType orders by exactly those
  values) at a fraction of the cost. Each page still walks the table, so large listings
  stay slow, only not quadratic in comparisons.

Usage: the same arguments as moto_server (localstack/start.sh passes -H and -p).
"""

import sys
import threading

from moto import server
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

DYNAMODB_TARGET = "DynamoDB_"
_dynamodb = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET):
        with _dynamodb:
            # The Flask app runs the handler and buffers its body inside this call.
            return _dispatch(self, environ, start_response)
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _serialized

# The index being queried, while Table.query runs (requests are serialized, but a
# thread-local keeps this right even if they were not).
_querying = threading.local()
_query = Table.query
_item_size = Item.size


def _query_projected(self, *args, **kwargs):
    name = kwargs.get("index_name") if "index_name" in kwargs else (args[7] if len(args) > 7 else None)
    index = self.get_index(name) if name else None
    projected = index is not None and (index.projection or {}).get("ProjectionType") != "ALL"
    _querying.index = index if projected else None
    try:
        return _query(self, *args, **kwargs)
    finally:
        _querying.index = None


def _size(self):
    index = getattr(_querying, "index", None)
    if index is None:
        return _item_size(self)
    return _item_size(index.project(self))


def _plain(value):
    return value.cast_value


def _sorted_items(self, hash_key_attrs, range_key_attrs, items):
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: tuple(_plain(item.attrs[a]) for a in attrs))
    return items


def _all_items(self):
    items = []
    for by_range in self.items.values():
        if self.range_key_attr:
            items.extend(by_range.values())
        else:
            items.append(by_range)
    return sorted(
        items,
        key=lambda x: (_plain(x.hash_key), _plain(x.range_key)) if x.range_key else _plain(x.hash_key),
    )


Table.query = _query_projected
Item.size = _size
Table.sorted_items = _sorted_items
Table.all_items = _all_items

if __name__ == "__main__":
    server.main(sys.argv[1:])
