"""Messages on the wire: ActivityStreams JSON-LD plus content-addressed safetensors artifacts.

A :class:`WirePayload` is what leaves a node: the activity as UTF-8 JSON and, for a model update,
the artifact bytes it names by SHA-256 (over HTTP the artifact is fetched by signed GET from the
``url``; the simulator ships it alongside). Decoding is strict and total: anything that is not a
well-formed SPORE activity raises :class:`MessageError` with one line, which the transport counts
as a dropped message. Activity JSON uses compact ``spore:`` IRIs with an inline prefix so that it
expands correctly without fetching SPORE's context.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from agents.protocol.messages import (
    Accept,
    AcceptStatistics,
    Add,
    Announce,
    Block,
    BlueprintSummary,
    CoListeningStatistics,
    Create,
    Flag,
    GroupInfo,
    Join,
    Leave,
    Message,
    MessageError,
    ModelUpdate,
    Reject,
    Remove,
    ShareStatistics,
    Undo,
)
from models.compression import FORMAT as DELTA_FORMAT
from models.compression import MalformedDeltaError
from models.compression import decode as decode_delta
from models.compression import encode as encode_delta
from models.itemgraph import FORMAT as STATISTICS_FORMAT

__all__ = ["CONTEXT", "WireCodec", "WirePayload", "from_activity", "from_jsonld", "to_activity"]

SPORE_NS = "https://w3id.org/spore/ns#"
AS_NS = "https://www.w3.org/ns/activitystreams#"
# Hashtag is Mastodon's extension of AS2; the two JSON-valued SPORE properties are JSON literals, so
# that JSON-LD expansion keeps them whole instead of reading their keys as relative IRIs.
CONTEXT: list[Any] = [
    "https://www.w3.org/ns/activitystreams",
    {
        "spore": SPORE_NS,
        "Hashtag": "as:Hashtag",
        "spore:sharedShapes": {"@type": "@json"},
        "spore:metrics": {"@type": "@json"},
    },
]
ARTIFACT_MEDIA_TYPE = "application/octet-stream"
MAX_ACTIVITY_BYTES = 1 << 20


@dataclass(frozen=True)
class WirePayload:
    """One delivery's bytes: the activity, and the artifacts it names (sha256 -> bytes)."""

    activity: bytes
    artifacts: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        return len(self.activity) + sum(len(blob) for _, blob in self.artifacts)


def _iri(value: Any) -> str:
    """An IRI given as a string or as ``{"id": ...}``, with the ``spore:``/``as:`` prefixes expanded
    (JSON-LD compaction by another processor may write either form)."""
    if isinstance(value, dict):
        value = value["id"]
    if not isinstance(value, str):
        raise MessageError(f"expected an IRI, got {value!r}")
    for prefix, namespace in (("spore:", SPORE_NS), ("as:", AS_NS)):
        if value.startswith(prefix):
            return namespace + value[len(prefix) :]
    return value


def _iris(value: Any) -> tuple[str, ...]:
    """One IRI or a list of them (compaction turns one-element arrays into scalars)."""
    return tuple(_iri(item) for item in (value if isinstance(value, list) else [value]))


def _shapes_json(shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> dict[str, list[int]]:
    return {name: list(shape) for name, shape in shapes}


def _shapes_from(value: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    if not isinstance(value, dict):
        raise MessageError("spore:sharedShapes must be an object")
    shapes = []
    for name in sorted(value):
        dims = value[name]
        if not isinstance(dims, list) or not all(isinstance(d, int) and d >= 0 for d in dims):
            raise MessageError(f"shape of {name!r} must be a list of non-negative integers")
        shapes.append((name, tuple(dims)))
    return tuple(shapes)


def _group_json(group: GroupInfo) -> dict[str, Any]:
    return (
        {
            "id": group.iri,
            "type": ["Group", "spore:LearningGroup"],
            "attributedTo": group.owner,
            "tag": [{"type": "Hashtag", "name": group.hashtag}],
            "spore:hashtag": group.hashtag,
            "spore:aggregationRule": {"id": group.aggregation_rule},
            "spore:schedule": group.schedule,
            "spore:roundTimeout": group.round_timeout,
            "spore:fanout": group.fanout,
            "spore:sharedShapes": _shapes_json(group.shared_shapes),
        }
        | (
            {"spore:sentRowFraction": group.row_fraction, "spore:quantize": group.quantize}
            if group.row_fraction is not None
            else {}
        )
        | ({"spore:statisticsNoise": group.statistics_noise} if group.statistics_noise is not None else {})
    )


def _group_from(value: Any) -> GroupInfo:
    return GroupInfo(
        iri=_iri(value),
        hashtag=value["spore:hashtag"],
        owner=_iri(value["attributedTo"]),
        aggregation_rule=_iri(value["spore:aggregationRule"]),
        schedule=value["spore:schedule"],
        round_timeout=float(value["spore:roundTimeout"]),
        fanout=value["spore:fanout"],
        shared_shapes=_shapes_from(value["spore:sharedShapes"]),
        row_fraction=float(value["spore:sentRowFraction"]) if "spore:sentRowFraction" in value else None,
        quantize=value.get("spore:quantize", False) is True,
        statistics_noise=(
            float(value["spore:statisticsNoise"]) if "spore:statisticsNoise" in value else None
        ),
    )


def _update_json(update: ModelUpdate, actor: str) -> dict[str, Any]:
    described: dict[str, Any] = {"spore:format": DELTA_FORMAT} if update.delta is not None else {}
    return described | {
        "type": ["Document", "spore:ModelUpdate"],
        "spore:group": {"id": update.group},
        "spore:roundNumber": update.round,
        "spore:samples": update.samples,
        "spore:sha256": update.sha256,
        "url": {
            "type": "Link",
            "href": f"{actor}/artifacts/{update.sha256}",
            "mediaType": ARTIFACT_MEDIA_TYPE,
        },
        "spore:metrics": dict(update.metrics),
        "spore:trainingStep": update.training_step,
    }


def _update_from(value: Any, artifacts: Mapping[str, bytes]) -> ModelUpdate:
    digest = value["spore:sha256"]
    blob = artifacts.get(digest)
    if blob is None:
        raise MessageError("model update artifact missing")
    if hashlib.sha256(blob).hexdigest() != digest:
        raise MessageError("model update artifact does not hash to its announced sha256")
    metrics = value.get("spore:metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(v, int | float) and math.isfinite(v) for v in metrics.values()
    ):
        raise MessageError("spore:metrics must map names to finite numbers")
    content: dict[str, Any] = {}
    declared = value.get("spore:format")
    if declared == DELTA_FORMAT:
        try:
            content["delta"] = decode_delta(blob)
        except MalformedDeltaError as error:
            raise MessageError(f"model update delta is malformed: {error}") from error
    elif declared is None:
        try:
            content["parameters"] = load_safetensors(blob)
        except (SafetensorError, ValueError) as error:
            raise MessageError(f"model update artifact is not safetensors: {error}") from error
    else:
        raise MessageError(f"unknown model update format {declared!r}")
    return ModelUpdate(
        group=_iri(value["spore:group"]),
        round=value["spore:roundNumber"],
        **content,
        samples=value["spore:samples"],
        sha256=digest,
        metrics=tuple(sorted((str(k), float(v)) for k, v in metrics.items())),
        training_step=value.get("spore:trainingStep", 1.0),
    )


def _statistics_json(statistics: CoListeningStatistics, actor: str) -> dict[str, Any]:
    return {
        "type": ["Document", "spore:CoListeningStatistics"],
        "spore:group": {"id": statistics.group},
        "spore:format": STATISTICS_FORMAT,
        "spore:sha256": statistics.sha256,
        "url": {
            "type": "Link",
            "href": f"{actor}/artifacts/{statistics.sha256}",
            "mediaType": ARTIFACT_MEDIA_TYPE,
        },
    }


def _statistics_from(value: Any, artifacts: Mapping[str, bytes]) -> CoListeningStatistics:
    """The announced artifact, checked against its digest; its content is the learner's to decode."""
    if value.get("spore:format") != STATISTICS_FORMAT:
        raise MessageError(f"co-listening statistics must be {STATISTICS_FORMAT}")
    digest = value["spore:sha256"]
    blob = artifacts.get(digest)
    if blob is None:
        raise MessageError("co-listening statistics artifact missing")
    return CoListeningStatistics(group=_iri(value["spore:group"]), data=blob, sha256=digest)


def _is_statistics(value: Any) -> bool:
    kinds = value.get("type") if isinstance(value, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return any(_iri(kind) == f"{SPORE_NS}CoListeningStatistics" for kind in kinds if isinstance(kind, str))


def to_activity(message: Message) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON-LD activity for ``message`` and the artifacts it references."""
    activity: dict[str, Any] = {
        "@context": CONTEXT,
        "id": message.id,
        "type": message.activity_type,
        "actor": message.actor,
        "to": list(message.to),
    }
    artifacts: dict[str, bytes] = {}
    if isinstance(message, Announce):
        activity["object"] = _group_json(message.group)
    elif isinstance(message, Join):
        activity["object"] = message.group
        activity["spore:blueprint"] = {
            "id": message.blueprint.iri,
            "spore:architecture": {"id": message.blueprint.architecture},
            "spore:sharedShapes": _shapes_json(message.blueprint.shared_shapes),
        }
    elif isinstance(message, Accept):
        activity["object"] = message.join
        activity["target"] = _group_json(message.group)
        activity["spore:members"] = list(message.members)
        activity["spore:roundNumber"] = message.round
        if message.model is not None:
            activity["result"] = _update_json(message.model, message.actor)
            artifacts[message.model.sha256] = _artifact(message.model)
    elif isinstance(message, Reject):
        activity.update(object=message.join, target=message.group, summary=message.reason)
    elif isinstance(message, Leave):
        activity["object"] = message.group
    elif isinstance(message, Add | Remove):
        activity.update(object=message.member, target=message.group)
        if isinstance(message, Remove):
            activity["summary"] = message.reason
    elif isinstance(message, Create):
        activity["object"] = _update_json(message.update, message.actor)
        artifacts[message.update.sha256] = _artifact(message.update)
    elif isinstance(message, ShareStatistics):
        activity["object"] = _statistics_json(message.statistics, message.actor)
        activity["spore:holds"] = list(message.holds)
        artifacts[message.statistics.sha256] = message.statistics.data
    elif isinstance(message, AcceptStatistics):
        activity.update(object=message.share, target=message.group, **{"spore:sha256": message.sha256})
    elif isinstance(message, Flag):
        activity.update(
            object=message.accused,
            summary=message.explanation,
            **{
                "spore:offence": message.offence,
                "spore:roundNumber": message.round,
                "spore:evidence": [{"id": item} for item in message.evidence],
            },
        )
    elif isinstance(message, Block):
        activity.update(object=message.blocked, summary=message.reason)
    elif isinstance(message, Undo):
        block: dict[str, Any] = {"id": message.block.id, "type": "Block", "actor": message.block.actor}
        block.update(to=list(message.block.to), object=message.block.blocked, summary=message.block.reason)
        activity.update(object=block, summary=message.reason)
    else:
        raise MessageError(f"no wire form for {type(message).__name__}")
    return activity, artifacts


def _artifact(update: ModelUpdate) -> bytes:
    if update.delta is not None:
        return encode_delta(update.delta)
    return save_safetensors({name: t.contiguous() for name, t in update.parameters.items()})


def from_activity(activity: Any, artifacts: Mapping[str, bytes]) -> Message:
    """Parse one SPORE activity; every defect becomes a :class:`MessageError`."""
    try:
        return _parse(activity, artifacts)
    except MessageError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise MessageError(f"malformed activity: {type(error).__name__}: {error}") from error


def _parse(activity: Any, artifacts: Mapping[str, bytes]) -> Message:
    if not isinstance(activity, dict):
        raise MessageError("an activity must be a JSON object")
    kind = activity["type"]
    common: dict[str, Any] = {
        "id": _iri(activity["id"]),
        "actor": _iri(activity["actor"]),
        "to": _iris(activity["to"]),
    }
    match kind:
        case "Announce":
            return Announce(**common, group=_group_from(activity["object"]))
        case "Join":
            blueprint = activity["spore:blueprint"]
            summary = BlueprintSummary(
                iri=_iri(blueprint),
                architecture=_iri(blueprint["spore:architecture"]),
                shared_shapes=_shapes_from(blueprint["spore:sharedShapes"]),
            )
            return Join(**common, group=_iri(activity["object"]), blueprint=summary)
        case "Accept" if "spore:sha256" in activity:
            return AcceptStatistics(
                **common,
                share=_iri(activity["object"]),
                group=_iri(activity["target"]),
                sha256=activity["spore:sha256"],
            )
        case "Accept":
            result = activity.get("result")
            return Accept(
                **common,
                join=_iri(activity["object"]),
                group=_group_from(activity["target"]),
                members=_iris(activity["spore:members"]),
                round=activity["spore:roundNumber"],
                model=_update_from(result, artifacts) if result is not None else None,
            )
        case "Reject":
            return Reject(
                **common, join=activity["object"], group=activity["target"], reason=str(activity["summary"])
            )
        case "Leave":
            return Leave(**common, group=_iri(activity["object"]))
        case "Add":
            return Add(**common, member=_iri(activity["object"]), group=_iri(activity["target"]))
        case "Remove":
            return Remove(
                **common,
                member=activity["object"],
                group=activity["target"],
                reason=str(activity.get("summary", "")),
            )
        case "Create" if _is_statistics(activity["object"]):
            return ShareStatistics(
                **common,
                statistics=_statistics_from(activity["object"], artifacts),
                holds=tuple(activity.get("spore:holds", ())),
            )
        case "Create":
            return Create(**common, update=_update_from(activity["object"], artifacts))
        case "Flag":
            return Flag(
                **common,
                accused=_iri(activity["object"]),
                offence=activity["spore:offence"],
                round=activity["spore:roundNumber"],
                evidence=_iris(activity["spore:evidence"]),
                explanation=str(activity["summary"]),
            )
        case "Block":
            return _block_from(activity, common)
        case "Undo":
            inner = activity["object"]
            if not isinstance(inner, dict) or inner.get("type") != "Block":
                raise MessageError("only an Undo of a Block is understood")
            block_common = {"id": _iri(inner["id"]), "actor": _iri(inner["actor"]), "to": _iris(inner["to"])}
            return Undo(
                **common, block=_block_from(inner, block_common), reason=str(activity.get("summary", ""))
            )
    raise MessageError(f"unsupported activity type {kind!r}")


def _block_from(activity: dict[str, Any], common: dict[str, Any]) -> Block:
    return Block(**common, blocked=_iri(activity["object"]), reason=str(activity.get("summary", "")))


def from_jsonld(document: Any, artifacts: Mapping[str, bytes]) -> Message:
    """Parse an activity in any JSON-LD form (expanded, or compacted with other contexts).

    The document is first compacted against :data:`CONTEXT` with the federation layer's frozen
    loader (remote contexts are never fetched), so that what it means, not how it is spelled,
    decides what it is.
    """
    from pyld.jsonld import JsonLdError  # type: ignore[import-untyped]

    from federation.jsonld import UnknownContext, compact

    try:
        compacted = compact(document, CONTEXT)
    except (JsonLdError, UnknownContext, TypeError, ValueError) as error:
        raise MessageError(f"not JSON-LD this node can read: {type(error).__name__}") from error
    return from_activity(compacted, artifacts)


class WireCodec:
    """Encode messages as :class:`WirePayload` and decode them strictly (the simulator's codec)."""

    def encode(self, message: Message) -> WirePayload:
        activity, artifacts = to_activity(message)
        body = json.dumps(activity, sort_keys=True, separators=(",", ":")).encode()
        return WirePayload(activity=body, artifacts=tuple(sorted(artifacts.items())))

    def decode(self, payload: Any) -> Message:
        if not isinstance(payload, WirePayload):
            raise MessageError("not a wire payload")
        if len(payload.activity) > MAX_ACTIVITY_BYTES:
            raise MessageError("activity larger than 1 MiB")
        try:
            activity = json.loads(payload.activity)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MessageError(f"activity is not JSON: {error}") from error
        return from_activity(activity, dict(payload.artifacts))
