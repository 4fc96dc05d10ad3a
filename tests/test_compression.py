"""Compressed deltas: int8 error bounds, top-k, error feedback, the wire format and its checks."""

from __future__ import annotations

import json

import pytest
import torch

from models.compression import (
    FORMAT,
    CompressedDelta,
    CompressionError,
    ErrorFeedback,
    MalformedDeltaError,
    RowDelta,
    changed_rows,
    compress_with_feedback,
    decode,
    dequantize_rows,
    encode,
    full_copy_bytes,
    quantize_rows,
    top_k_rows,
    updated_rows,
)
from models.merge import ModelUpdate, WeightedMean

ARTISTS = "artist_embedding.weight"


def test_int8_round_trip_error_is_at_most_half_a_step() -> None:
    values = (
        torch.randn(50, 16, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 2, 50)[:, None]
    )
    q, scales = quantize_rows(values)
    assert q.dtype == torch.int8 and scales.shape == (50,)
    assert torch.equal(scales, values.abs().amax(dim=1) / 127)
    error = (dequantize_rows(q, scales) - values).abs()
    assert bool((error <= scales[:, None] / 2 * (1 + 1e-5)).all())
    # The largest value of each row is exact (it is +-127 steps).
    assert torch.equal(q.abs().amax(dim=1), torch.full((50,), 127, dtype=torch.int8))


def test_int8_by_hand_and_zero_rows() -> None:
    q, scales = quantize_rows(torch.tensor([[1.27, -0.635, 0.0], [0.0, 0.0, 0.0]]))
    assert q.tolist() == [[127, -64, 0], [0, 0, 0]]  # -63.5 rounds half to even: -64
    assert scales.tolist() == pytest.approx([0.01, 0.0])
    assert dequantize_rows(q, scales)[1].tolist() == [0.0, 0.0, 0.0]


def test_top_k_keeps_the_largest_rows() -> None:
    change = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.1, 0.0], [0.0, -6.0], [1.0, 1.0]])
    assert top_k_rows(change, 2).tolist() == [1, 3]  # norms 5 and 6
    assert top_k_rows(change, 10).tolist() == [1, 2, 3, 4]  # never a zero row
    ties = torch.tensor([[1.0], [-1.0], [1.0]])
    assert top_k_rows(ties, 2).tolist() == [0, 1]


def test_changed_rows() -> None:
    before = torch.zeros(4, 2)
    after = before.clone()
    after[1, 0] = 1.0
    after[3] = -2.0
    assert changed_rows(before, after).tolist() == [1, 3]
    with pytest.raises(CompressionError, match="cannot compare"):
        changed_rows(before, torch.zeros(3, 2))


def test_feedback_keeps_what_was_not_sent() -> None:
    change = {ARTISTS: torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 3.0], [0.5, 0.5]])}
    delta, residual = compress_with_feedback(change, fraction=0.25, quantize=False)
    assert delta.parameters[ARTISTS].rows.tolist() == [2]
    assert residual[ARTISTS].tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.5, 0.5]]
    # Next round nothing new changed: the largest residual row goes out.
    zero = {ARTISTS: torch.zeros(4, 2)}
    delta, residual = compress_with_feedback(zero, residual, fraction=0.25, quantize=False)
    assert delta.parameters[ARTISTS].rows.tolist() == [0]
    assert change[ARTISTS][2].tolist() == [0.0, 3.0]  # inputs untouched


def test_error_feedback_converges_to_the_true_sum() -> None:
    """Sum of sent deltas = sum of changes - residual, and the residual stays bounded."""
    generator = torch.Generator().manual_seed(3)
    rows, dim, rounds = 200, 8, 60
    hot = torch.randperm(rows, generator=generator)[:40]
    with_feedback, without = ErrorFeedback(fraction=0.05), ErrorFeedback(fraction=0.05)
    true_sum = torch.zeros(rows, dim)
    sent_with, sent_without = torch.zeros(rows, dim), torch.zeros(rows, dim)
    for _ in range(rounds):
        change = torch.zeros(rows, dim)
        change[hot] = 0.01 * torch.randn(40, dim, generator=generator) + 0.01
        true_sum += change
        sent_with += with_feedback.compress({ARTISTS: change}).parameters[ARTISTS].dense()
        sent_without += without.compress({ARTISTS: change}).parameters[ARTISTS].dense()
        without.residual = {}  # no memory: what is not sent is dropped
    torch.testing.assert_close(sent_with + with_feedback.residual[ARTISTS], true_sum, atol=1e-5, rtol=0)
    error_with = (sent_with - true_sum).norm() / true_sum.norm()
    error_without = (sent_without - true_sum).norm() / true_sum.norm()
    assert error_with < 0.15
    assert error_without > 0.6
    assert error_with < error_without / 4


def typical_change(
    rows: int = 4000, dim: int = 64, touched: int = 400, seed: int = 0
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    change = torch.zeros(rows, dim)
    change[torch.randperm(rows, generator=generator)[:touched]] = 0.01 * torch.randn(
        touched, dim, generator=generator
    )
    return {ARTISTS: change}


def test_typical_sparse_update_is_under_five_percent_of_a_full_copy() -> None:
    change = typical_change()  # 10 % of the rows touched in a round
    delta, _ = compress_with_feedback(change, fraction=1.0)
    data = encode(delta)
    full = full_copy_bytes({ARTISTS: change[ARTISTS].shape})
    assert full == 4000 * 64 * 4
    assert delta.rows_sent == 400
    assert len(data) <= 0.05 * full
    uncompressed = encode(compress_with_feedback(change, fraction=1.0, quantize=False)[0])
    assert len(data) < len(uncompressed) / 3


def test_encode_decode_round_trip_and_determinism() -> None:
    change = typical_change(rows=300, dim=8, touched=40)
    delta, _ = compress_with_feedback(change, fraction=0.1)
    data = encode(CompressedDelta(delta.parameters, {"round": "4"}))
    assert data == encode(CompressedDelta(delta.parameters, {"round": "4"}))
    back = decode(data, expected={ARTISTS: torch.Size([300, 8])})
    assert back.metadata == {"round": "4"}
    part, original = back.parameters[ARTISTS], delta.parameters[ARTISTS]
    assert torch.equal(part.rows, original.rows) and torch.equal(part.values, original.values)
    assert torch.equal(part.dense(), original.dense())
    float_delta, _ = compress_with_feedback(change, fraction=0.1, quantize=False)
    assert torch.equal(
        decode(encode(float_delta)).parameters[ARTISTS].dense(), float_delta.parameters[ARTISTS].dense()
    )


def test_decoded_delta_feeds_a_row_sparse_merge() -> None:
    base = {ARTISTS: torch.arange(12, dtype=torch.float32).reshape(6, 2)}
    change = {ARTISTS: torch.zeros(6, 2)}
    change[ARTISTS][4] = torch.tensor([1.0, -1.0])
    weights, rows = updated_rows(base, decode(encode(compress_with_feedback(change, fraction=1.0)[0])))
    assert rows[ARTISTS].tolist() == [4]
    update = ModelUpdate(sender="https://n.example/a", round=1, weights=weights, num_examples=3, rows=rows)
    merged = WeightedMean().aggregate([update], reference=base)[ARTISTS]
    assert merged[4].tolist() == pytest.approx([9.0, 8.0])
    assert torch.equal(merged[:4], base[ARTISTS][:4])


def test_empty_delta_round_trips() -> None:
    delta, _ = compress_with_feedback({ARTISTS: torch.zeros(5, 3)})
    back = decode(encode(delta))
    assert back.parameters[ARTISTS].rows.numel() == 0
    assert torch.equal(back.parameters[ARTISTS].dense(), torch.zeros(5, 3))


def test_compression_refuses_private_and_non_finite_changes() -> None:
    with pytest.raises(CompressionError, match="not a shared parameter"):
        compress_with_feedback({"listener_embedding.weight": torch.ones(2, 2)})
    with pytest.raises(CompressionError, match="NaN"):
        compress_with_feedback({ARTISTS: torch.tensor([[float("nan")]])})
    with pytest.raises(CompressionError, match="fraction"):
        compress_with_feedback({ARTISTS: torch.ones(2, 2)}, fraction=0.0)
    with pytest.raises(CompressionError, match="residual"):
        compress_with_feedback({ARTISTS: torch.ones(2, 2)}, {ARTISTS: torch.ones(3, 2)})


# ---- malformed bytes ------------------------------------------------------------------------------


def good_bytes() -> bytes:
    return encode(compress_with_feedback(typical_change(rows=20, dim=4, touched=5), fraction=1.0)[0])


def rewrite(data: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    """``data`` with its safetensors header passed through ``edit`` (tensor bytes unchanged)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data[8 + length :]


def tensors_bytes(tensors: dict[str, torch.Tensor], shapes: dict[str, list[int]]) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"spore-delta": json.dumps({"format": FORMAT, "shapes": shapes})})


def ours(edit):  # type: ignore[no-untyped-def]
    """A header edit applied to SPORE's JSON entry inside the safetensors metadata."""

    def apply(header: dict) -> None:
        entry = json.loads(header["__metadata__"]["spore-delta"])
        edit(entry)
        header["__metadata__"]["spore-delta"] = json.dumps(entry)

    return apply


def _set_shape(shape: list[int]):  # type: ignore[no-untyped-def]
    return ours(lambda entry: entry.update(shapes={ARTISTS: shape}))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (lambda: b"", "shorter"),
        (lambda: b"\xff" * 8 + b"{}", "longer than the payload"),
        (lambda: (2).to_bytes(8, "little") + b"\xff\xfe", "not JSON"),
        (lambda: good_bytes()[:-5], "not a safetensors payload"),
        (lambda: rewrite(good_bytes(), ours(lambda e: e.update(format="x"))), "format"),
        (lambda: rewrite(good_bytes(), ours(lambda e: e.pop("shapes"))), "shapes"),
        (lambda: rewrite(good_bytes(), _set_shape([20, 5])), "values of"),
        (lambda: rewrite(good_bytes(), _set_shape([3, 4])), "increasing and within"),
        (lambda: rewrite(good_bytes(), _set_shape([-1, 4])), "bad shape"),
        (lambda: rewrite(good_bytes(), ours(lambda e: e.update(metadata={"a": 1}))), "metadata"),
        (lambda: rewrite(good_bytes(), lambda h: h.pop("__metadata__")), "format"),
        (
            lambda: rewrite(
                good_bytes(), ours(lambda e: e.update(shapes={"listener_embedding.weight": [2]}))
            ),
            "not a shared parameter",
        ),
        (
            lambda: tensors_bytes(
                {
                    f"{ARTISTS}/rows": torch.tensor([2, 1], dtype=torch.int32),
                    f"{ARTISTS}/values": torch.zeros(2, 4),
                },
                {ARTISTS: [5, 4]},
            ),
            "increasing",
        ),
        (
            lambda: tensors_bytes(
                {f"{ARTISTS}/rows": torch.tensor([1]), f"{ARTISTS}/values": torch.zeros(1, 4)},
                {ARTISTS: [5, 4]},
            ),
            "int32",
        ),
        (
            lambda: tensors_bytes(
                {
                    f"{ARTISTS}/rows": torch.tensor([1], dtype=torch.int32),
                    f"{ARTISTS}/values": torch.zeros(1, 4, dtype=torch.int8),
                },
                {ARTISTS: [5, 4]},
            ),
            "scale",
        ),
        (
            lambda: tensors_bytes(
                {
                    f"{ARTISTS}/rows": torch.tensor([1], dtype=torch.int32),
                    f"{ARTISTS}/values": torch.full((1, 4), -128, dtype=torch.int8),
                    f"{ARTISTS}/scales": torch.ones(1),
                },
                {ARTISTS: [5, 4]},
            ),
            "-127..127",
        ),
        (
            lambda: tensors_bytes(
                {
                    f"{ARTISTS}/rows": torch.tensor([1], dtype=torch.int32),
                    f"{ARTISTS}/values": torch.full((1, 4), float("inf")),
                },
                {ARTISTS: [5, 4]},
            ),
            "infinite",
        ),
        (
            lambda: tensors_bytes(
                {
                    f"{ARTISTS}/rows": torch.tensor([1], dtype=torch.int32),
                    f"{ARTISTS}/values": torch.zeros(1, 4, dtype=torch.float64),
                },
                {ARTISTS: [5, 4]},
            ),
            "int8 or float32",
        ),
        (
            lambda: tensors_bytes(
                {
                    f"{ARTISTS}/rows": torch.tensor([1], dtype=torch.int32),
                    f"{ARTISTS}/values": torch.zeros(1, 4),
                    "listener_embedding.weight": torch.zeros(1, 4),
                },
                {ARTISTS: [5, 4]},
            ),
            "unexpected tensors",
        ),
    ],
)
def test_malformed_bytes_are_refused(payload, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedDeltaError, match=message):
        decode(payload())


def test_decode_checks_size_type_and_the_receivers_shapes() -> None:
    data = good_bytes()
    with pytest.raises(MalformedDeltaError, match="exceeds"):
        decode(data, max_bytes=len(data) - 1)
    with pytest.raises(MalformedDeltaError, match="bytes"):
        decode("text")  # type: ignore[arg-type]
    with pytest.raises(MalformedDeltaError, match="receiver has"):
        decode(data, expected={ARTISTS: torch.Size([21, 4])})
    with pytest.raises(MalformedDeltaError, match="does not have"):
        decode(data, expected={"tag_embedding.weight": torch.Size([20, 4])})
    assert isinstance(decode(data, expected={ARTISTS: torch.Size([20, 4])}).parameters[ARTISTS], RowDelta)
