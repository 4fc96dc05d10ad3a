"""Content-addressed model snapshots: safetensors weights named by their SHA-256.

A snapshot file is ``<sha256>.safetensors``: the SHA-256 of the file's bytes is its name, so a peer
that fetches it by name can check that it got what was announced, and two identical snapshots are
one file. The safetensors header carries what is needed to rebuild the model (architecture,
hyperparameters) and digests of the listener and artist IRI tables, so that weights are never
applied to rows they were not trained for. Loading refuses a file whose bytes do not hash to its
name with :class:`SnapshotIntegrityError`.

Tensor names separate shared from private parameters: ``listener_*`` rows describe a node's own
listeners and never leave it; ``artist_*``, ``tag_*`` and ``entity_*`` are item-side
(:func:`shared_parameters`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from models.data import MusicTensors
from models.lightgcn import (
    PRIVATE_PREFIXES,
    SHARED_PREFIXES,
    EmbeddingRecommender,
    KnowledgeLightGCN,
    LightGCN,
    MatrixFactorization,
)

__all__ = [
    "SNAPSHOT_SUFFIX",
    "Snapshot",
    "SnapshotError",
    "SnapshotIntegrityError",
    "iri_table_digest",
    "load_snapshot",
    "save_snapshot",
    "shared_parameters",
    "snapshot_bytes",
]

SNAPSHOT_SUFFIX = ".safetensors"
FORMAT = "safetensors"
METADATA_KEY = "spore"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SnapshotError(ValueError):
    """A snapshot cannot be read or does not fit the data it is applied to."""


class SnapshotIntegrityError(SnapshotError):
    """A snapshot's bytes do not hash to the digest it is named or announced by."""


@dataclass(frozen=True)
class Snapshot:
    """A model snapshot as saved or loaded: the model plus what its file says about it."""

    sha256: str
    byte_size: int
    model: EmbeddingRecommender
    metadata: dict[str, str]
    path: Path | None = None

    @property
    def architecture(self) -> str:
        return self.metadata["architecture"]


def iri_table_digest(iris: tuple[str, ...]) -> str:
    """SHA-256 of the newline-joined IRIs: identifies a row order without storing the IRIs."""
    return hashlib.sha256("\n".join(iris).encode("utf-8")).hexdigest()


def shared_parameters(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The item-side tensors of a state dict, the only ones a node may send to its group."""
    return {name: tensor for name, tensor in state.items() if name.startswith(SHARED_PREFIXES)}


def snapshot_bytes(
    model: EmbeddingRecommender, tensors: MusicTensors, extra: dict[str, str] | None = None
) -> bytes:
    """The safetensors serialisation of ``model``, deterministic for equal weights and metadata."""
    state = {name: value.detach().contiguous().cpu() for name, value in model.state_dict().items()}
    unknown = [n for n in state if not n.startswith(SHARED_PREFIXES + PRIVATE_PREFIXES)]
    if unknown:
        raise SnapshotError(f"parameters neither shared nor private by name: {', '.join(unknown)}")
    fields = {
        "architecture": model.architecture,
        "hyperparameters": json.dumps(model.hyperparameters(), sort_keys=True),
        "listeners_sha256": iri_table_digest(tensors.listeners),
        "artists_sha256": iri_table_digest(tensors.artists),
        "tags_sha256": iri_table_digest(tensors.tags),
        "entities_sha256": iri_table_digest(tensors.entities),
        **(extra or {}),
    }
    # safetensors writes its metadata map in arbitrary order; one key holding sorted JSON keeps the
    # bytes, and so the content address, identical for identical snapshots.
    return save_safetensors(state, metadata={METADATA_KEY: json.dumps(fields, sort_keys=True)})


def save_snapshot(
    model: EmbeddingRecommender,
    tensors: MusicTensors,
    directory: Path,
    *,
    extra: dict[str, str] | None = None,
) -> Snapshot:
    """Write ``<sha256>.safetensors`` into ``directory`` (atomically) and return its description."""
    data = snapshot_bytes(model, tensors, extra)
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}{SNAPSHOT_SUFFIX}"
    if not path.exists():
        # Write-then-rename so a crash never leaves a file whose name promises bytes it lacks.
        with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".partial") as handle:
            handle.write(data)
        os.replace(handle.name, path)
    metadata = _read_metadata(data)
    return Snapshot(sha256=digest, byte_size=len(data), model=model, metadata=metadata, path=path)


def _read_metadata(data: bytes) -> dict[str, str]:
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    fields: dict[str, str] = json.loads(header.get("__metadata__", {}).get(METADATA_KEY, "{}"))
    return fields


def load_snapshot(
    path: Path, tensors: MusicTensors | None = None, *, expected_sha256: str | None = None
) -> Snapshot:
    """Read and verify a snapshot file, rebuild its model, and check it fits ``tensors``' rows.

    The digest checked is ``expected_sha256`` if given, else the file name's stem when it is a
    64-hex-digit name. A mismatch raises :class:`SnapshotIntegrityError`; a file that is not a
    snapshot, or whose IRI tables differ from ``tensors``', raises :class:`SnapshotError`.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SnapshotError(f"cannot read snapshot {path}: {error.strerror or error}") from None
    digest = hashlib.sha256(data).hexdigest()
    announced = expected_sha256 or (Path(path).stem if _HEX64.match(Path(path).stem) else None)
    if announced is not None and announced.lower() != digest:
        raise SnapshotIntegrityError(
            f"snapshot {Path(path).name} has SHA-256 {digest}, expected {announced.lower()}; refusing it"
        )
    try:
        state = load_safetensors(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise SnapshotError(f"{path} is not a safetensors snapshot: {error}") from None
    model = _rebuild(metadata, state, path)
    if tensors is not None:
        check_rows(metadata, tensors)
    return Snapshot(sha256=digest, byte_size=len(data), model=model, metadata=metadata, path=Path(path))


def check_rows(metadata: dict[str, str], tensors: MusicTensors) -> None:
    """Refuse weights whose row order differs from ``tensors``' IRI tables."""
    for kind in ("listeners", "artists", "tags", "entities"):
        recorded = metadata.get(f"{kind}_sha256")
        if recorded is not None and recorded != iri_table_digest(getattr(tensors, kind)):
            raise SnapshotError(
                f"snapshot was trained on other {kind} than this store holds "
                f"(IRI table digest {recorded[:12]}... differs); retrain or import the same data"
            )


def _rebuild(metadata: dict[str, str], state: dict[str, torch.Tensor], path: Path) -> EmbeddingRecommender:
    try:
        architecture = metadata["architecture"]
        hyper = json.loads(metadata["hyperparameters"])
        listeners, dim = state["listener_embedding.weight"].shape
        artists = state["artist_embedding.weight"].shape[0]
    except (KeyError, ValueError) as error:
        raise SnapshotError(f"{path} lacks snapshot metadata or tensors ({error})") from None
    model: EmbeddingRecommender
    if architecture == MatrixFactorization.architecture:
        model = MatrixFactorization(listeners, artists, dim, init_std=hyper.get("init_std", 0.1))
    elif architecture == LightGCN.architecture:
        model = LightGCN(listeners, artists, dim, int(hyper["num_layers"]), hyper.get("init_std", 0.1))
    elif architecture == KnowledgeLightGCN.architecture:
        model = KnowledgeLightGCN(
            listeners,
            artists,
            state["tag_embedding.weight"].shape[0],
            state["entity_embedding.weight"].shape[0],
            dim,
            int(hyper["num_layers"]),
            hyper.get("init_std", 0.1),
            side_information=str(hyper.get("side_information", "features")),
        )
    else:
        raise SnapshotError(f"{path}: unknown architecture {architecture!r}")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise SnapshotError(f"{path}: tensors do not fit a {architecture} model: {error}") from None
    model.eval()
    return model
