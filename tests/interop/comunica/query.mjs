// Runs one SPARQL query with Comunica over several SPARQL endpoints (a federated query) and prints the
// solutions as JSON: [{"variable": {"termType": ..., "value": ...}}, ...].
// Usage: node query.mjs QUERY ENDPOINT [ENDPOINT ...]
import { QueryEngine } from "@comunica/query-sparql";

const [query, ...endpoints] = process.argv.slice(2);
if (!query || endpoints.length === 0) {
  console.error("usage: node query.mjs QUERY ENDPOINT [ENDPOINT ...]");
  process.exit(2);
}
const engine = new QueryEngine();
const stream = await engine.queryBindings(query, {
  sources: endpoints.map((value) => ({ type: "sparql", value })),
});
const rows = (await stream.toArray()).map((bindings) =>
  Object.fromEntries([...bindings].map(([variable, term]) => [variable.value, { termType: term.termType, value: term.value }])),
);
process.stdout.write(JSON.stringify(rows) + "\n");
