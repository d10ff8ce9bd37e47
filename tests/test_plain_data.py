"""The plain-data channel from a student's kernel to the grader (coursekit.grading.plain_data).

The kernel's encoder runs here in a namespace of its own, as it would in the
kernel; what it sends, and what a hostile kernel could send instead, is
decoded by the grader's side into plain data or refused.
"""

import base64
import io
import json
import math
import types

import numpy as np
import pytest

from coursekit.grading.plain_data import KERNEL_ENCODER, MAX_DEPTH, NotPlainData, decode


@pytest.fixture(scope="module")
def encode():
    namespace = {}
    exec(KERNEL_ENCODER, namespace)  # noqa: S102 (the encoder is our own code, run as the kernel runs it)
    return namespace["_coursekit_encode"]


class Lying(np.ndarray):
    """An array that says it equals anything and has any shape asked of it."""

    def __eq__(self, other):
        return True

    @property
    def shape(self):
        return (999,)


class FittedModel:
    def __init__(self):
        self.labels_ = np.array([0, 1, 1])
        self.cluster_centers_ = np.zeros((2, 3), dtype=np.float32)
        self.n_iter_ = 4
        self._private_ = "hidden"

    def __eq__(self, other):
        return True

    def predict(self, X):
        return "never called by the grader"


def test_numbers_arrays_and_containers_come_back_as_they_were(encode):
    value = (np.int64(3), np.float32(0.5), True, None, "text", [1.5, math.nan, -math.inf],
             {0: 7, 2: np.int16(3), "k": (1, 2)}, np.arange(6, dtype=np.uint8).reshape(2, 3))
    back = decode(encode(value))
    assert back[:5] == [3, 0.5, True, None, "text"]
    assert back[5][0] == 1.5 and math.isnan(back[5][1]) and back[5][2] == -math.inf
    assert back[6] == {0: 7, 2: 3, "k": [1, 2]}
    assert back[7].dtype == np.uint8 and back[7].shape == (2, 3) and back[7].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_an_array_subclass_arrives_as_a_plain_array_with_its_real_data(encode):
    lying = np.arange(4.0).view(Lying)
    back = decode(encode(lying))
    assert type(back) is np.ndarray and back.shape == (4,) and back.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert not np.array_equal(back, np.zeros(4))


def test_another_object_arrives_as_its_fitted_attributes_only(encode):
    back = decode(encode(FittedModel()))
    assert isinstance(back, types.SimpleNamespace)
    assert sorted(vars(back)) == ["cluster_centers_", "labels_", "n_iter_"]
    assert back.labels_.tolist() == [0, 1, 1] and back.cluster_centers_.dtype == np.float32
    assert type(back) is types.SimpleNamespace and back != types.SimpleNamespace(), "its own __eq__ stays behind"


def test_object_arrays_are_refused_on_both_sides(encode):
    with pytest.raises(NotPlainData, match="array of Python objects"):
        decode(encode(np.array([{"a": 1}], dtype=object)))
    # A kernel that sends a pickled array itself: numpy.load refuses to unpickle it.
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    forged = json.dumps({"__ndarray__": base64.b64encode(buffer.getvalue()).decode()})
    with pytest.raises(NotPlainData, match="cannot be read"):
        decode(forged)


@pytest.mark.parametrize("forged, message", [
    ("not json", "not readable data"),
    ('{"__class__": "os.system", "args": ["echo"]}', "not plain data"),
    ('{"__ndarray__": 12}', "malformed"),
    ('{"__ndarray__": "!!!"}', "cannot be read"),
    ('{"__dict__": [[[1, 2], 3]]}', "key of type list"),
    ('{"__dict__": [[1]]}', "malformed"),
    ('{"__float__": "1e308"}', "not plain data"),
    ('{"__unsupported__": "a generator"}', "a generator"),
    ("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5), "nested too deeply"),
])
def test_whatever_else_a_kernel_sends_is_refused(forged, message):
    with pytest.raises(NotPlainData, match=message):
        decode(forged)


def test_a_value_too_large_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr("coursekit.grading.plain_data.MAX_BYTES", 100)
    with pytest.raises(NotPlainData, match="larger than"):
        decode("[" + "1, " * 100 + "1]")
