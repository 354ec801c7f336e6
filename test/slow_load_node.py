"""The reasoning node whose checkpoint takes forever to load (its weights never arrive).

Run as a process by test_process.py to send it a signal in the middle of a model load.
"""

import threading

from cosmos_reason_ros.core.backends import transformers_backend
from cosmos_reason_ros.ros.node import main


def _weights_that_never_arrive(*args, **kwargs):
    print('slow_load_node: reading weights', flush=True)
    threading.Event().wait()


transformers_backend.AutoModelForImageTextToText.from_pretrained = _weights_that_never_arrive

if __name__ == '__main__':
    main()
