"""The SPORE protocol's messages: ActivityStreams activities as immutable, typed values.

Every message is one ActivityStreams 2.0 activity (``Announce``, ``Join``, ``Accept``, ``Reject``,
``Leave``, ``Add``, ``Remove``, ``Create``) whose object is a SPORE value (a learning group, a model
update). The protocol core works on these values only; :mod:`agents.protocol.wire` turns them into
JSON-LD and content-addressed artifacts for a transport that needs bytes. Values are validated when
constructed, so a handler never meets a half-formed message: a transport that decodes garbage gets a
:class:`MessageError` and counts a drop.

Model updates carry *shared* parameters only (item-side rows: artists, tags, entities); their
SHA-256 over the canonical safetensors bytes is their name, so a receiver checks that it got what
was announced (:func:`parameters_digest`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import torch
from safetensors.torch import save as save_safetensors

from models.compression import CompressedDelta
from models.compression import encode as encode_delta

__all__ = [
    "PUBLIC",
    "Accept",
    "Add",
    "Announce",
    "Block",
    "BlueprintSummary",
    "CoListeningStatistics",
    "Create",
    "Flag",
    "GroupInfo",
    "Join",
    "Leave",
    "Message",
    "MessageError",
    "ModelUpdate",
    "Reject",
    "Remove",
    "Schedule",
    "ShareStatistics",
    "AcceptStatistics",
    "Undo",
    "freeze_parameters",
    "parameters_digest",
    "shapes_of",
]

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_HASHTAG = re.compile(r"^#[A-Za-z0-9_]{1,100}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

Shapes = tuple[tuple[str, tuple[int, ...]], ...]


class MessageError(ValueError):
    """A message that no SPORE node will act on: malformed, inconsistent, or not what it claims."""


class Schedule:
    """The two round schedules a group may choose (closed set, spelled as in the group's JSON-LD)."""

    SYNC = "sync"
    GOSSIP = "gossip"
    ALL = (SYNC, GOSSIP)


def _require_iri(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://", "urn:")):
        raise MessageError(f"{what} must be an IRI, got {value!r}")
    return value


def freeze_parameters(parameters: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """A read-only, name-sorted view of detached CPU tensors.

    Messages are shared by reference between simulated nodes (no copy per recipient, which is what
    lets thousands of nodes fit in one process), so nobody may mutate them after sending.
    """
    frozen = {}
    for name in sorted(parameters):
        tensor = parameters[name]
        if not isinstance(tensor, torch.Tensor):
            raise MessageError(f"parameter {name!r} is not a tensor")
        frozen[name] = tensor.detach()
    return MappingProxyType(frozen)


def parameters_digest(parameters: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the canonical safetensors bytes of ``parameters``: their content address."""
    canonical = {name: parameters[name].detach().contiguous().cpu() for name in sorted(parameters)}
    return hashlib.sha256(save_safetensors(canonical)).hexdigest()


def shapes_of(parameters: Mapping[str, torch.Tensor]) -> Shapes:
    return tuple((name, tuple(parameters[name].shape)) for name in sorted(parameters))


@dataclass(frozen=True)
class BlueprintSummary:
    """What an applicant tells a group about its blueprint: enough for the admission policy.

    ``shared_shapes`` are the names and shapes of the parameters it would publish; a group admits
    only applicants whose shapes equal its own, so that every update can be merged row for row.
    """

    iri: str
    architecture: str
    shared_shapes: Shapes

    def __post_init__(self) -> None:
        _require_iri(self.iri, "blueprint")
        _require_iri(self.architecture, "architecture")


@dataclass(frozen=True)
class GroupInfo:
    """A learning group as its owner announces it: hashtag, rule, schedule and parameter shapes."""

    iri: str
    hashtag: str
    owner: str
    aggregation_rule: str
    schedule: str = Schedule.SYNC
    round_timeout: float = 30.0
    fanout: int = 3
    shared_shapes: Shapes = ()
    # Compressed updates: send at most this fraction of each table's rows (None: full tensors).
    row_fraction: float | None = None
    quantize: bool = False
    # Members share noised co-listening statistics with this noise (None: the group shares none).
    statistics_noise: float | None = None

    def __post_init__(self) -> None:
        _require_iri(self.iri, "group")
        _require_iri(self.owner, "group owner")
        _require_iri(self.aggregation_rule, "aggregation rule")
        if not isinstance(self.hashtag, str) or not _HASHTAG.match(self.hashtag):
            raise MessageError(f"hashtag must look like #name, got {self.hashtag!r}")
        if self.schedule not in Schedule.ALL:
            raise MessageError(f"schedule must be one of {Schedule.ALL}, got {self.schedule!r}")
        if not (isinstance(self.round_timeout, int | float) and 0 < self.round_timeout < math.inf):
            raise MessageError(f"round timeout must be a positive number, got {self.round_timeout!r}")
        if not isinstance(self.fanout, int) or self.fanout < 1:
            raise MessageError(f"fanout must be a positive integer, got {self.fanout!r}")
        if self.row_fraction is not None and not (
            isinstance(self.row_fraction, int | float) and 0 < self.row_fraction <= 1
        ):
            raise MessageError(f"row fraction must lie in (0, 1], got {self.row_fraction!r}")
        if self.quantize and self.row_fraction is None:
            raise MessageError("quantized updates need a row fraction (1.0 for every changed row)")
        if self.statistics_noise is not None and not (
            isinstance(self.statistics_noise, int | float) and 0 <= self.statistics_noise < math.inf
        ):
            raise MessageError(
                f"statistics noise must be a non-negative number, got {self.statistics_noise!r}"
            )


@dataclass(frozen=True, eq=False)
class ModelUpdate:
    """One member's shared parameters after one round, with the weight its merge deserves.

    Either ``parameters`` (full tensors) or ``delta``, a compressed change since the round's base
    model (``models.compression``: the rows that changed most, optionally int8 per row, with error
    feedback at the sender). ``samples`` is how many training interactions produced it (the weight
    of a weighted mean). ``sha256`` names the canonical bytes (safetensors of the parameters, or
    the delta's own encoding) and is checked on construction, so an update whose content does not
    match its announced digest never reaches a merge.
    """

    group: str
    round: int
    parameters: Mapping[str, torch.Tensor] = field(default_factory=dict)
    samples: int = 1
    sha256: str = ""
    metrics: tuple[tuple[str, float], ...] = ()
    delta: CompressedDelta | None = None
    training_step: float = 1.0  # learning rate x local epochs the sender declares (defence.py)

    def __post_init__(self) -> None:
        _require_iri(self.group, "update group")
        if not isinstance(self.round, int) or self.round < 0:
            raise MessageError(f"round must be a non-negative integer, got {self.round!r}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise MessageError(f"samples must be a positive integer, got {self.samples!r}")
        step = self.training_step
        if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf:
            raise MessageError(f"the training step must be a positive number, got {step!r}")
        if (not self.parameters) == (self.delta is None):
            raise MessageError("an update carries either parameters or a compressed delta")
        if self.delta is not None:
            if not self.delta.parameters:
                raise MessageError("a compressed update must carry at least one parameter")
            digest = hashlib.sha256(encode_delta(self.delta)).hexdigest()
        else:
            frozen = freeze_parameters(self.parameters)
            for name, tensor in frozen.items():
                if not tensor.is_floating_point():
                    raise MessageError(f"parameter {name!r} is not floating point")
                if not bool(torch.isfinite(tensor).all()):
                    raise MessageError(f"parameter {name!r} holds NaN or infinity")
            object.__setattr__(self, "parameters", frozen)
            digest = parameters_digest(frozen)
        if not self.sha256:
            object.__setattr__(self, "sha256", digest)
        elif not _HEX64.match(self.sha256) or self.sha256 != digest:
            # A peer (or a corrupting link) announcing one digest and sending other bytes could
            # otherwise smuggle parameters past anyone who logged only the digest.
            raise MessageError("update content does not hash to the announced sha256")

    @property
    def shapes(self) -> Shapes:
        if self.delta is not None:
            return tuple((name, part.shape) for name, part in sorted(self.delta.parameters.items()))
        return shapes_of(self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.shapes)

    @property
    def byte_size(self) -> int:
        """Bytes of the tensors it carries (what compression is measured by)."""
        if self.delta is not None:
            return sum(
                t.numel() * t.element_size()
                for part in self.delta.parameters.values()
                for t in (part.rows, part.values, part.scales)
                if t is not None
            )
        return sum(t.numel() * t.element_size() for t in self.parameters.values())


@dataclass(frozen=True, kw_only=True)
class Message:
    """An activity: its id, the actor that performs it and the actors it is addressed to."""

    activity_type: ClassVar[str] = "Activity"
    id: str
    actor: str
    to: tuple[str, ...] = field(default=())

    @property
    def hashtags(self) -> tuple[str, ...]:
        """Hashtags the activity is tagged with; a public activity reaches their followers."""
        return ()

    def __post_init__(self) -> None:
        _require_iri(self.id, "activity id")
        _require_iri(self.actor, "actor")
        if not isinstance(self.to, tuple) or not self.to:
            raise MessageError("an activity must be addressed to at least one recipient")
        for recipient in self.to:
            _require_iri(recipient, "recipient")


@dataclass(frozen=True, kw_only=True)
class Announce(Message):
    """A group owner advertises its learning group under its hashtag (addressed to Public)."""

    activity_type: ClassVar[str] = "Announce"
    group: GroupInfo

    @property
    def hashtags(self) -> tuple[str, ...]:
        return (self.group.hashtag,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group.owner != self.actor:
            raise MessageError("only a group's owner may announce it")


@dataclass(frozen=True, kw_only=True)
class Join(Message):
    """A node asks a group's owner to admit it."""

    activity_type: ClassVar[str] = "Join"
    group: str
    blueprint: BlueprintSummary

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.group, "join object")


@dataclass(frozen=True, kw_only=True)
class Accept(Message):
    """The owner admits an applicant: the roster, the current round and the group model."""

    activity_type: ClassVar[str] = "Accept"
    join: str
    group: GroupInfo
    members: tuple[str, ...]
    round: int
    model: ModelUpdate | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.join, "accepted join")
        if self.group.owner != self.actor:
            raise MessageError("only a group's owner may accept members")
        if not isinstance(self.round, int) or self.round < 0:
            raise MessageError("accept round must be a non-negative integer")
        for member in self.members:
            _require_iri(member, "member")


@dataclass(frozen=True, kw_only=True)
class Reject(Message):
    """The owner refuses an applicant, with the admission policy's one-line reason."""

    activity_type: ClassVar[str] = "Reject"
    join: str
    group: str
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.join, "rejected join")
        _require_iri(self.group, "group")


@dataclass(frozen=True, kw_only=True)
class Leave(Message):
    """A member leaves a group; sent to every member so that nobody waits for it."""

    activity_type: ClassVar[str] = "Leave"
    group: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.group, "group")


@dataclass(frozen=True, kw_only=True)
class Add(Message):
    """The owner tells members that ``member`` was admitted (AS ``Add`` with target the group)."""

    activity_type: ClassVar[str] = "Add"
    member: str
    group: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.member, "added member")
        _require_iri(self.group, "group")


@dataclass(frozen=True, kw_only=True)
class Remove(Message):
    """The owner removes ``member`` (silent too long, or not a member); ``reason`` says why."""

    activity_type: ClassVar[str] = "Remove"
    member: str
    group: str
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.member, "removed member")
        _require_iri(self.group, "group")


@dataclass(frozen=True, kw_only=True)
class Create(Message):
    """A member publishes its model update for one round of its group."""

    activity_type: ClassVar[str] = "Create"
    update: ModelUpdate


@dataclass(frozen=True)
class CoListeningStatistics:
    """A member's noised co-listening statistics for its group: ``models.itemgraph`` safetensors bytes.

    Kept as bytes (not decoded tensors) because only the receiver's learner knows the catalogue to
    decode them against; ``sha256`` names the bytes and is checked on construction, like an update.
    """

    group: str
    data: bytes
    sha256: str = ""

    def __post_init__(self) -> None:
        _require_iri(self.group, "statistics group")
        if not isinstance(self.data, bytes) or not self.data:
            raise MessageError("statistics must be non-empty bytes")
        digest = hashlib.sha256(self.data).hexdigest()
        if not self.sha256:
            object.__setattr__(self, "sha256", digest)
        elif self.sha256 != digest:
            raise MessageError("statistics do not hash to the announced sha256")

    @property
    def byte_size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, kw_only=True)
class ShareStatistics(Message):
    """A member publishes its co-listening statistics to its group (AS ``Create`` of a
    ``spore:CoListeningStatistics``): once to each peer, and again whenever they change.

    ``holds`` lists the digests of the peers' statistics the sender holds: a peer whose current
    statistics the sender once acknowledged but no longer holds (it restarted) sends them again.
    """

    activity_type: ClassVar[str] = "Create"
    statistics: CoListeningStatistics
    holds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not all(isinstance(digest, str) and len(digest) == 64 for digest in self.holds):
            raise MessageError("held statistics must be named by their sha256")


@dataclass(frozen=True, kw_only=True)
class AcceptStatistics(Message):
    """A member acknowledges statistics it holds (AS ``Accept`` of the ``ShareStatistics``), so
    that their sender stops re-sending them; statistics nobody acknowledged go again."""

    activity_type: ClassVar[str] = "Accept"
    share: str  # the ShareStatistics activity accepted
    group: str
    sha256: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.share, "accepted statistics activity")
        _require_iri(self.group, "statistics group")
        if not (isinstance(self.sha256, str) and len(self.sha256) == 64):
            raise MessageError("accepted statistics must name their sha256")


# Defederation (docs/spore-protocol.md section 8; reasoning/defederation.py decides when) ----------

OFFENCES = ("outlier-update", "unreproduced-metric", "shape-violation", "signature-failure")


@dataclass(frozen=True, kw_only=True)
class Flag(Message):
    """A signed accusation (AS ``Flag``): ``accused`` misbehaved in ``round``, citing ``evidence``.

    Evidence names resources others can check, such as the content-addressed artifact of the
    accused's update (``<accused>/artifacts/<sha256>``). Receivers weigh it by the accuser's
    standing; one Flag alone never makes them block anyone.
    """

    activity_type: ClassVar[str] = "Flag"
    accused: str
    offence: str
    round: int
    evidence: tuple[str, ...]
    explanation: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.accused, "accused")
        if self.accused == self.actor:
            raise MessageError("a node cannot accuse itself")
        if self.offence not in OFFENCES:
            raise MessageError(f"offence must be one of {OFFENCES}, got {self.offence!r}")
        if not isinstance(self.round, int) or self.round < 0:
            raise MessageError("flag round must be a non-negative integer")
        if not isinstance(self.evidence, tuple) or not self.evidence:
            raise MessageError("an accusation must cite at least one piece of evidence")
        for item in self.evidence:
            _require_iri(item, "evidence")
        if not isinstance(self.explanation, str) or not self.explanation or "\n" in self.explanation:
            raise MessageError("an accusation needs a one-line explanation")


@dataclass(frozen=True, kw_only=True)
class Block(Message):
    """The actor stops exchanging with ``blocked`` (AS ``Block``, sent to the blocked actor)."""

    activity_type: ClassVar[str] = "Block"
    blocked: str
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_iri(self.blocked, "blocked actor")
        if self.blocked == self.actor:
            raise MessageError("a node cannot block itself")


@dataclass(frozen=True, kw_only=True)
class Undo(Message):
    """The actor lifts its earlier ``block`` (AS ``Undo`` whose object is the Block)."""

    activity_type: ClassVar[str] = "Undo"
    block: Block
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block.actor != self.actor:
            raise MessageError("only the actor that blocked may undo the block")
