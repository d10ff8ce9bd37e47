"""Plain data between a student's kernel and the grader: what a student's function returned.

The first piece of the checker process of issue 16 (hidden tests judged outside
the student's interpreter). A value crosses as a JSON tree that only
describes data:

- ``None``, ``bool``, ``int``, ``float`` (``nan`` and infinities as
  ``{"__float__": "nan"}``), ``str``;
- lists (tuples arrive as lists), and dicts as ``{"__dict__": [[key, value], ...]}``
  (keys of any plain type, e.g. the cluster numbers of ``retrieve_info``);
- arrays as ``{"__ndarray__": base64 of the .npy bytes}``, rebuilt by
  :func:`numpy.load` with ``allow_pickle=False``: the dtype and shape come from
  the .npy header, an object array is refused, and the result is a plain
  ``ndarray`` whatever subclass was sent;
- any other object as ``{"__object__": its type's name, "attributes": {...}}``
  holding its fitted attributes (public names ending in ``_``, as scikit-learn
  names them, that are themselves plain data): the checker sees a
  :class:`types.SimpleNamespace`, never the object, its methods or its
  ``__eq__``.

:data:`KERNEL_ENCODER` is the encoder as source code, run inside the student's
kernel (which cannot import this package); nothing there is trusted: it can
only change the data it sends, never how the grader reads it. :func:`decode`
runs in the grader's own interpreter, executes nothing, unpickles nothing, and
refuses anything that is not of the forms above, too deep or too large.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import types

import numpy as np

#: The largest encoded value accepted (bytes of JSON).
MAX_BYTES = 64 << 20
#: The deepest nesting of lists, dicts and objects accepted.
MAX_DEPTH = 20


class NotPlainData(ValueError):
    """What the kernel sent is not plain data (see the module docstring)."""


#: The encoder, as it runs in the student's kernel: ``_coursekit_encode(value) -> JSON text``.
KERNEL_ENCODER = r'''
def _coursekit_encode(value):
    import base64 as _b64, io as _io, json as _json, math as _math
    import numpy as _np

    def tree(v, depth=0):
        if depth > 20:
            return {"__unsupported__": "nested too deeply"}
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, _np.integer)) and not isinstance(v, _np.bool_):
            return int(v)
        if isinstance(v, _np.bool_):
            return bool(v)
        if isinstance(v, (float, _np.floating)):
            v = float(v)
            return v if _math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, _np.ndarray):
            if v.dtype.hasobject:
                return {"__unsupported__": "an array of Python objects"}
            buffer = _io.BytesIO()
            _np.save(buffer, _np.asarray(v).view(_np.ndarray), allow_pickle=False)
            return {"__ndarray__": _b64.b64encode(buffer.getvalue()).decode("ascii")}
        if isinstance(v, (list, tuple)):
            return [tree(x, depth + 1) for x in v]
        if isinstance(v, dict):
            return {"__dict__": [[tree(k, depth + 1), tree(x, depth + 1)] for k, x in v.items()]}
        fitted = {}
        for name in sorted(dir(v)):
            if name.endswith("_") and not name.startswith("_"):
                try:
                    fitted[name] = tree(getattr(v, name), depth + 1)
                except Exception:
                    pass
        return {"__object__": type(v).__name__, "attributes": fitted}

    return _json.dumps(tree(value))
'''


def decode(text):
    """The value described by ``text`` (JSON from the kernel), rebuilt from data only.

    Raises
    ------
    NotPlainData
        Not JSON, too large or too deep, an unknown form, an object array, or
        a form the kernel marked as unsupported.
    """
    if len(text) > MAX_BYTES:
        raise NotPlainData(f"the result is larger than {MAX_BYTES >> 20} MB")
    try:
        tree = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotPlainData(f"the result is not readable data ({type(error).__name__})") from None
    return _value(tree, 0)


def _value(tree, depth):
    if depth > MAX_DEPTH:
        raise NotPlainData("the result is nested too deeply")
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if isinstance(tree, list):
        return [_value(item, depth + 1) for item in tree]
    if not isinstance(tree, dict) or len(tree) not in (1, 2):
        raise NotPlainData("the result has a form that is not plain data")
    if set(tree) == {"__ndarray__"}:
        return _array(tree["__ndarray__"])
    if set(tree) == {"__float__"} and tree["__float__"] in ("nan", "inf", "-inf"):
        return float(tree["__float__"])
    if set(tree) == {"__dict__"} and isinstance(tree["__dict__"], list):
        pairs = tree["__dict__"]
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise NotPlainData("a dict of the result is malformed")
        result = {}
        for key, item in pairs:
            key = _value(key, depth + 1)
            if not isinstance(key, (bool, int, float, str, type(None))):
                raise NotPlainData(f"a dict key of type {type(key).__name__} is not plain data")
            result[key] = _value(item, depth + 1)
        return result
    if set(tree) == {"__object__", "attributes"} and isinstance(tree["attributes"], dict):
        attributes = {name: _value(item, depth + 1) for name, item in tree["attributes"].items()
                      if isinstance(name, str) and name.isidentifier() and name.endswith("_")}
        return types.SimpleNamespace(**attributes)
    if set(tree) == {"__unsupported__"}:
        raise NotPlainData(f"the result holds {tree['__unsupported__']}, which is not plain data")
    raise NotPlainData("the result has a form that is not plain data")


def _array(encoded):
    if not isinstance(encoded, str):
        raise NotPlainData("an array of the result is malformed")
    try:
        data = base64.b64decode(encoded, validate=True)
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (binascii.Error, ValueError, EOFError, OSError) as error:
        raise NotPlainData(f"an array of the result cannot be read: {error}") from None
    if not isinstance(array, np.ndarray) or type(array) is not np.ndarray:
        raise NotPlainData("an array of the result is not a plain array")
    return array

