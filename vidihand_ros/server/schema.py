"""The wire format (`vidihand_ros.wire`, version 1) as JSON Schema, for the app's OpenAPI document.

msgpack maps are described as the JSON objects they correspond to; `format: binary` marks msgpack
bin fields (JPEG/PNG/raw bytes, array data). Published so other clients can be written from
`GET /openapi.json` alone; `vidihand_ros.wire` stays the reference that both sides run.
"""

from __future__ import annotations

from typing import Any

from vidihand_ros.types import HandPose
from vidihand_ros.wire import CONTENT_TYPE, MAX_FRAMES, WIRE_VERSION

__all__ = ["ERROR_SCHEMA", "windows_operation"]

_ID = {"type": "string", "maxLength": 128}
_INT = {"type": "integer", "minimum": 0}

CAMERA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["K", "D", "distortion_model", "width", "height"],
    "properties": {
        "K": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 9,
            "maxItems": 9,
            "description": "3×3 intrinsics, row-major",
        },
        "D": {"type": "array", "items": {"type": "number"}, "maxItems": 14, "description": "distortion"},
        "distortion_model": {"type": "string", "description": "plumb_bob, rational_polynomial, equidistant"},
        "width": _INT,
        "height": _INT,
    },
}

FRAME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["stamp_ns", "frame_id", "camera", "encoding", "width", "height", "data"],
    "properties": {
        "stamp_ns": {**_INT, "description": "the source frame's stamp (ns), echoed in the reply"},
        "frame_id": {"type": "string"},
        "camera": {"type": ["integer", "null"], "minimum": 0, "description": "index into cameras, or nil"},
        "encoding": {"type": "string", "enum": ["jpeg", "png", "rgb8"]},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "data": {
            "type": "string",
            "format": "binary",
            "description": "the camera's JPEG/PNG bytes as sent, or H×W×3 uint8 rgb8, row-major",
        },
        "index": {
            **_INT,
            "description": "optional: the frame's position in its stream (default start + its place "
            "in the window); frames shared by overlapping windows keep one index",
        },
    },
}

WINDOW_SCHEMA: dict[str, Any] = {
    "title": "Window",
    "type": "object",
    "required": ["wire", "window_id", "stream_id", "segment", "start", "num_valid", "cameras", "frames"],
    "properties": {
        "wire": {"type": "integer", "enum": [WIRE_VERSION], "description": "wire version (409 otherwise)"},
        "window_id": {**_ID, "description": "echoed in the reply"},
        "stream_id": {
            **_ID,
            "description": "the client's camera stream: a stateful estimator keeps one "
            "state per stream, so send a stream's windows in order",
        },
        "segment": _INT,
        "start": _INT,
        "num_valid": {"type": "integer", "minimum": 1, "description": "frames past it are padding"},
        "cameras": {"type": "array", "items": CAMERA_SCHEMA, "maxItems": 16},
        "frames": {"type": "array", "items": FRAME_SCHEMA, "minItems": 1, "maxItems": MAX_FRAMES},
    },
}

ARRAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dtype", "shape", "data"],
    "properties": {
        "dtype": {"type": "string", "enum": ["<f4", "<f8", "<i8", "|b1"]},
        "shape": {"type": "array", "items": _INT},
        "data": {"type": "string", "format": "binary", "description": "little-endian, C order"},
    },
}

HAND_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "nil when the window has no estimate for this hand; else arrays over its frames",
    "required": ["estimated", "presence", "filled", *HandPose.ARRAY_FIELDS],
    "properties": {
        name: ARRAY_SCHEMA for name in ("estimated", "presence", "filled", *HandPose.ARRAY_FIELDS)
    },
}

POSES_SCHEMA: dict[str, Any] = {
    "title": "Poses",
    "type": "object",
    "required": ["wire", "window_id", "stamp_ns", "frame_id", "left", "right"],
    "properties": {
        "wire": {"type": "integer", "enum": [WIRE_VERSION]},
        "window_id": _ID,
        "stamp_ns": ARRAY_SCHEMA,
        "frame_id": {"type": "array", "items": {"type": "string"}},
        "left": HAND_SCHEMA,
        "right": HAND_SCHEMA,
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "field"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, one line"},
        "field": {"type": "string", "description": "where, e.g. frames[3].data; empty when not one field"},
    },
}

_ERRORS = {
    "400": "not msgpack, a missing or mistyped field, a corrupt or oversized image",
    "401": "missing or wrong bearer token",
    "409": "another wire version",
    "413": "body over the size limit",
    "415": "a Content-Type other than application/msgpack",
    "422": "the estimator cannot use this window (e.g. no intrinsics)",
    "429": "queue full: retry after Retry-After seconds",
    "503": "warming up, or the worker estimating it stopped: retry after Retry-After seconds",
    "504": "not estimated within the server's deadline",
}


def windows_operation() -> dict[str, Any]:
    """`openapi_extra` for `POST /v1/windows`: msgpack in and out, JSON errors."""
    error = {"application/json": {"schema": ERROR_SCHEMA}}
    responses: dict[str, Any] = {
        "200": {
            "description": "one pose pair per frame of the window, padding included",
            "content": {CONTENT_TYPE: {"schema": POSES_SCHEMA}},
        }
    }
    for status, description in _ERRORS.items():
        responses[status] = {"description": description, "content": error}
        if status in ("429", "503"):
            responses[status]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return {
        "requestBody": {
            "required": True,
            "description": f"one window in the msgpack wire format, version {WIRE_VERSION}",
            "content": {CONTENT_TYPE: {"schema": WINDOW_SCHEMA}},
        },
        "responses": responses,
    }
