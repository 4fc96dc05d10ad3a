"""The outgoing-payload check: listener IRIs, per-listener parameters and interactions are found in
JSON, JSON-LD (also compacted), Turtle, safetensors headers and Python objects; clean payloads pass."""

from __future__ import annotations

import json
import lzma

import pytest
import torch
from rdflib import Graph, Literal, Namespace, URIRef
from safetensors.torch import save as save_safetensors

from federation.jsonld import OBJECT_CONTEXT
from models.compression import compress_with_feedback, encode
from models.merge import ModelUpdate
from models.privacy import Finding, PrivacyViolation, check_outgoing, find_leaks
from ontology import SPORE, load_context

NODE = "https://node.example/"
ALICE = f"{NODE}listeners/alice"
BOB = f"{NODE}listeners/bob"
LISTENERS = [ALICE, BOB]
ARTIST = "https://www.last.fm/music/Portishead"


def kinds(payload: object) -> set[tuple[str, str]]:
    return {(f.kind, f.what) for f in find_leaks(payload, LISTENERS)}


def test_clean_activity_with_inline_contexts_passes() -> None:
    activity = {
        "@context": [*OBJECT_CONTEXT[:1], load_context()["@context"]],
        "id": f"{NODE}activities/1",
        "type": "Create",
        "actor": f"{NODE}actor",
        "object": {"type": "Note", "content": f"now merging round 4; artist {ARTIST}", "tag": ["#jazz"]},
    }
    check_outgoing(activity, LISTENERS)
    check_outgoing(json.dumps(activity).encode(), LISTENERS)


def test_listener_iri_in_json_text_and_nested_objects() -> None:
    activity = {"type": "Note", "to": [f"{NODE}followers"], "object": {"attributedTo": ALICE}}
    assert ("listener", ALICE) in kinds(activity)
    assert ("listener", ALICE) in kinds(json.dumps(activity))
    assert ("listener", BOB) in kinds(f"plain text mentioning {BOB}.")
    with pytest.raises(PrivacyViolation, match="listener https://node.example/listeners/alice"):
        check_outgoing(json.dumps(activity).encode("utf-8"), LISTENERS)


def test_compacted_json_ld_is_expanded_before_checking() -> None:
    document = {
        "@context": {"ex": f"{NODE}listeners/", "knows": "https://schema.org/knows"},
        "knows": {"@id": "ex:alice"},
    }
    assert "ex:alice" in json.dumps(document) and ALICE not in json.dumps(document)
    assert ("listener", ALICE) in kinds(document)
    assert ("listener", ALICE) in kinds(json.dumps(document))


def test_turtle_with_prefixed_names_and_interactions() -> None:
    turtle = f"""
        @prefix l: <{NODE}listeners/> .
        @prefix spore: <https://w3id.org/spore/ns#> .
        @prefix schema: <https://schema.org/> .
        [] a spore:Listening ; schema:agent l:bob ; schema:object <{ARTIST}> ; spore:playCount 12 .
    """
    found = kinds(turtle)
    assert ("listener", BOB) in found
    assert ("interaction", str(SPORE.Listening)) in found
    assert ("interaction", str(SPORE.playCount)) in found


def test_interactions_without_listener_iris_are_found() -> None:
    anonymous = {
        "@context": load_context()["@context"],
        "type": "Listening",
        "artist": ARTIST,
        "playCount": 3,
    }
    found = kinds(anonymous)
    assert ("interaction", "Listening") in found and ("interaction", "playCount") in found
    graph = Graph()
    event = URIRef(f"{NODE}events/1")
    graph.add(
        (
            event,
            URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type"),
            Namespace("https://schema.org/").ListenAction,
        )
    )
    assert ("interaction", "https://schema.org/ListenAction") in kinds(graph)


def test_rdflib_graph_terms_and_literals() -> None:
    graph = Graph()
    graph.add((URIRef(f"{NODE}recs/1"), SPORE.forListener, URIRef(ALICE)))
    graph.add((URIRef(f"{NODE}recs/2"), URIRef("https://schema.org/description"), Literal(f"for {BOB}")))
    assert {("listener", ALICE), ("listener", BOB)} <= kinds(graph)


def test_safetensors_header_with_listener_table_is_refused() -> None:
    snapshot = save_safetensors(
        {"artist_embedding.weight": torch.zeros(3, 2), "listener_embedding.weight": torch.zeros(2, 2)},
        metadata={"architecture": "lightgcn"},
    )
    found = find_leaks(snapshot, LISTENERS)
    assert Finding("parameter", "listener_embedding.weight", "payload safetensors tensor") in found
    leaky_metadata = save_safetensors({"artist_embedding.weight": torch.zeros(1)}, metadata={"note": ALICE})
    assert ("listener", ALICE) in kinds(leaky_metadata)
    interactions = save_safetensors({"interactions": torch.zeros(2, 5, dtype=torch.int64)})
    assert ("parameter", "interactions") in kinds(interactions)


def test_compressed_delta_and_model_update_pass() -> None:
    change = {"artist_embedding.weight": torch.randn(20, 4)}
    delta, _ = compress_with_feedback(change, fraction=0.5)
    check_outgoing(encode(delta), LISTENERS)
    update = ModelUpdate(sender=f"{NODE}actor", round=2, weights=change, num_examples=40)
    check_outgoing(update, LISTENERS)


def test_mappings_of_tensors_and_free_text_parameter_names() -> None:
    assert ("parameter", "listener_embedding.weight") in kinds({"listener_embedding.weight": torch.zeros(1)})
    assert ("parameter", "listener_embedding") in kinds("state: listener_embedding rows 0-9")
    assert ("parameter", "play_counts") in kinds({"play_counts": [1, 2]})
    # Words that merely resemble a name are not parameters.
    assert kinds("three listeners_sha256 values and a listener") == set()


def test_opaque_bytes_are_refused() -> None:
    with pytest.raises(PrivacyViolation, match="opaque"):
        check_outgoing(b"\x1f\x8b\x08\x00\xff\xfe\xfd", LISTENERS)


def test_custom_private_parameter_names() -> None:
    found = find_leaks({"user_bias": 1.0}, [], private_param_names=("user_",))
    assert found == (Finding("parameter", "user_bias", "payload key"),)


def test_violation_message_is_one_line_and_lists_findings() -> None:
    with pytest.raises(PrivacyViolation) as caught:
        check_outgoing(
            {"a": ALICE, "b": BOB, "listener_embedding.weight": 0, "c": "spore:Listening"}, LISTENERS
        )
    assert "\n" not in str(caught.value)
    assert "and 1 more" in str(caught.value)
    assert len(caught.value.findings) == 4


def test_co_listening_statistics_and_their_activity_pass_and_a_leaky_header_does_not() -> None:
    from agents.protocol.messages import CoListeningStatistics, ShareStatistics
    from agents.protocol.wire import WireCodec
    from models.itemgraph import co_listening, encode_statistics

    edges = torch.tensor([[0, 0, 1, 1, 1], [0, 2, 0, 1, 2]])
    payload = encode_statistics(co_listening(edges, 2, 3))
    statistics = CoListeningStatistics(group=f"{NODE}groups/jazz", data=payload)
    wire = WireCodec().encode(
        ShareStatistics(id=f"{NODE}activities/1", actor=f"{NODE}actor", to=(BOB,), statistics=statistics)
    )
    for blob in (wire.activity, *(artifact for _, artifact in wire.artifacts)):
        check_outgoing(blob, [ALICE])
    assert ("listener", ALICE) in kinds(save_safetensors({"values": torch.zeros(1)}, metadata={"by": ALICE}))
    # Compression hides nothing from the check: it reads xz payloads as their receivers will.
    leaky = save_safetensors({"values": torch.zeros(1)}, metadata={"by": ALICE})
    assert ("listener", ALICE) in kinds(lzma.compress(leaky))
    assert "opaque" in {kind for kind, _ in kinds(lzma.compress(leaky)[:-8])}


def test_the_privacy_check_expands_json_ld_without_the_federation_layer() -> None:
    import subprocess
    import sys

    script = (
        "import sys, json; from models.privacy import find_leaks; "
        f"doc = {{'@context': {{'ex': '{NODE}listeners/', 'knows': 'https://schema.org/knows'}}, "
        "'knows': {'@id': 'ex:alice'}}; "
        f"assert find_leaks(json.dumps(doc), ['{ALICE}']); "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('federation', 'agents')], 'imported'"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
