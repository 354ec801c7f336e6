"""ROS messages as plain Python data, for printing results and feedback as JSON."""

import array
from typing import Any


def message_to_dict(message: Any) -> Any:
    """Convert a ROS message (nested messages, arrays, bytes) into dicts, lists and scalars.

    Image payloads (uint8[] data) become their length, not their bytes, to keep output readable.
    """
    if hasattr(message, 'get_fields_and_field_types'):
        return {name: _field(name, getattr(message, name))
                for name in message.get_fields_and_field_types()}
    if isinstance(message, (list, tuple)):
        return [message_to_dict(item) for item in message]
    if hasattr(message, 'tolist'):
        return message.tolist()
    return message


def _field(name: str, value: Any) -> Any:
    if name == 'data' and isinstance(value, (bytes, bytearray, array.array)):
        return f'<{len(value)} bytes>'
    return message_to_dict(value)
