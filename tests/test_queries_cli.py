"""``spore query`` end to end through ``agents.cli.main``: output formats, bindings, exit codes and
one-line errors, against an on-disk store and the live Oxigraph server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyoxigraph import NamedNode, QueryResultsFormat, QuerySolutions, RdfFormat, parse, parse_query_results

from agents.cli import main
from knowledge.store import EmbeddedStore, SparqlEndpointStore

CATALOGUE = NamedNode("https://host.example/nodes/ada/graphs/catalogue")
DATA = """
@prefix schema: <https://schema.org/> .
<https://music.example/band/1> a schema:MusicGroup ; schema:name "Sigur Rós", "シガー・ロス"@ja .
<https://music.example/band/2> a schema:MusicGroup ; schema:name "Múm" .
"""


@pytest.fixture
def store_dir(tmp_path: Path) -> str:
    with EmbeddedStore(tmp_path / "ada") as store:
        store.load(DATA, format=RdfFormat.TURTLE, graph=CATALOGUE)
    return str(tmp_path / "ada")


def spore(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_table_output_is_aligned_and_uses_prefixes(
    capsys: pytest.CaptureFixture[str], store_dir: str
) -> None:
    status, out, _ = spore(capsys, "query", "node-summary", "--store", store_dir)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["graph", "type", "resources"]
    assert lines[2].split() == [CATALOGUE.value, "schema:MusicGroup", "2"]
    assert lines[2].index("schema:") == lines[0].index("type")


def test_csv_is_the_standard_sparql_csv(capsys: pytest.CaptureFixture[str], store_dir: str) -> None:
    status, out, _ = spore(capsys, "query", "graph-sizes", "--store", store_dir, "--format", "csv")
    assert status == 0
    assert list(csv.reader(io.StringIO(out))) == [["graph", "triples"], [CATALOGUE.value, "5"]]


def test_json_is_sparql_results_json_and_bindings_apply(
    capsys: pytest.CaptureFixture[str], store_dir: str
) -> None:
    status, out, _ = spore(
        capsys,
        "query",
        "SELECT ?band WHERE { GRAPH ?g { ?band schema:name ?name } }",
        "--store",
        store_dir,
        "--bind",
        'name="シガー・ロス"@ja',
        "--format",
        "json",
    )
    assert status == 0
    results = parse_query_results(out, QueryResultsFormat.JSON)
    assert isinstance(results, QuerySolutions)
    rows = list(results)
    assert [row["band"] for row in rows] == [NamedNode("https://music.example/band/1")]


def test_construct_prints_turtle(capsys: pytest.CaptureFixture[str], store_dir: str) -> None:
    status, out, _ = spore(
        capsys,
        "query",
        "describe-resource",
        "--store",
        store_dir,
        "--bind",
        "resource=<https://music.example/band/2>",
    )
    assert status == 0
    triples = list(parse(out, RdfFormat.TURTLE))
    assert len(triples) == 2
    assert "schema:MusicGroup" in out


def test_ask_and_a_query_file(capsys: pytest.CaptureFixture[str], store_dir: str, tmp_path: Path) -> None:
    query_file = tmp_path / "has-mum.rq"
    query_file.write_text('ASK { GRAPH ?g { ?band <https://schema.org/name> "Múm" } }', encoding="utf-8")
    assert spore(capsys, "query", str(query_file), "--store", store_dir)[:2] == (0, "true\n")


def test_update_then_query(capsys: pytest.CaptureFixture[str], store_dir: str) -> None:
    status, _, err = spore(
        capsys,
        "query",
        "--update",
        "INSERT { GRAPH ?g { ?band schema:genre ?genre } } WHERE { }",
        "--store",
        store_dir,
        "--bind",
        f"g=<{CATALOGUE.value}>",
        "--bind",
        "band=<https://music.example/band/2>",
        "--bind",
        'genre="post-rock"',
    )
    assert (status, err) == (0, "")
    assert spore(capsys, "query", "graph-sizes", "--store", store_dir, "--format", "csv")[1].endswith(
        ",6\r\n"
    )


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["graph-size"], 2, "not a named query, a .rq file or SPARQL text; named queries: "),
        (["describe-resource"], 2, "describe-resource needs --bind resource=..."),
        (["SELECT * WHERE { ?s ?p }"], 2, "error at 1:"),
        (["missing.rq"], 2, "cannot read missing.rq"),
        (["graph-sizes", "--bind", "x=hello"], 2, "not one RDF term"),
        (["graph-sizes", "--bind", 'x="a" . <urn:s> <urn:p> "b"'], 2, "not one RDF term"),
        (["SELECT ?s WHERE { ?s ?p ?o }", "--bind", "typo=<urn:x>"], 2, "no variable ?typo"),
    ],
)
def test_unreadable_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], store_dir: str, args: list[str], status: int, message: str
) -> None:
    code, out, err = spore(capsys, "query", *args, "--store", store_dir)
    assert code == status
    assert err.startswith("spore: error: ") and message in err
    assert err.count("\n") == 1 and out == ""


def test_a_missing_store_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = spore(capsys, "query", "graph-sizes", "--store", str(tmp_path / "none"))
    assert code == 2 and "no store directory" in err


def test_an_unreachable_endpoint_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = spore(
        capsys, "query", "graph-sizes", "--endpoint", "http://127.0.0.1:9/query", "--timeout", "2"
    )
    assert code == 1
    assert err == "spore: error: cannot reach http://127.0.0.1:9/query: [Errno 111] Connection refused\n"


def test_the_same_query_against_the_live_endpoint(
    capsys: pytest.CaptureFixture[str], oxigraph_server: str
) -> None:
    with SparqlEndpointStore.oxigraph(oxigraph_server) as remote:
        remote.clear(None)
        remote.load(DATA, format=RdfFormat.TURTLE, graph=CATALOGUE)
    status, out, _ = spore(
        capsys, "query", "graph-sizes", "--endpoint", f"{oxigraph_server}/query", "--format", "csv"
    )
    assert status == 0
    assert list(csv.reader(io.StringIO(out))) == [["graph", "triples"], [CATALOGUE.value, "5"]]
    code, _, err = spore(
        capsys, "query", "SELECT ?s WHERE { ?s ?p }", "--endpoint", f"{oxigraph_server}/query"
    )
    assert code == 2 and "answered 400: error at 1:" in err


@pytest.mark.slow
def test_the_installed_command_runs(store_dir: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agents", "query", "graph-sizes", "--store", store_dir, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["head"]["vars"] == ["graph", "triples"]
