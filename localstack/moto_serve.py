"""moto_server with DynamoDB requests handled one at a time.

moto's server answers each request on its own thread, and its DynamoDB backend changes
items without a lock: two UpdateItem calls on one item at the same moment can each read
the old value, so an `ADD` is lost or a condition that should fail passes. Real DynamoDB
applies writes to an item one after another, and the engine counts on that (conditional
end of a subtask, `ADD` of the task's counters). Here every DynamoDB request takes one
lock; other services (SQS long polls above all) still run side by side.

Usage: the same arguments as moto_server (localstack/start.sh passes -H and -p).
"""

import sys
import threading

from moto import server
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

if __name__ == "__main__":
    server.main(sys.argv[1:])
