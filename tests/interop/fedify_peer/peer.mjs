// A real Fedify 2.3.6 ActivityPub peer for SPORE's interoperability tests.
//
// Everything ActivityPub here (actor documents, WebFinger, HTTP Signatures in both
// schemes, JSON-LD parsing, delivery) is Fedify's own code; this script only wires one
// actor and records what Fedify saw, so a test can compare our host against software
// nobody on the SPORE project wrote.
//
//   ./node_modules/.bin/node peer.mjs [--port N] [--name peer] [--host 127.0.0.1]
//       [--context URL=FILE ...] [--check-get-signatures]
//
// --check-get-signatures answers a GET of the actor that carries a signature only when Fedify
// verifies that signature (401 otherwise), so a signed fetch that succeeds proves Fedify accepted
// its signature. Unsigned GETs are still served: Fedify fetches its own key without signing.
//
// --context serves the JSON-LD context document in FILE for URL, as its publisher would:
// everything here is offline, so a context whose home is on the public web (w3id.org)
// could not be fetched otherwise, and Fedify refuses documents whose context it cannot load.
//
// On start it prints one JSON line `{"ready": true, "origin": ..., "actor": ...}` to stdout.
// A test drives it through a small JSON control API on the same server (paths under
// /_control/, see `control` below); all other paths are answered by `federation.fetch()`.
//
// Signature schemes: Fedify signs with RFC 9421 first and falls back to draft-cavage
// after a 4xx ("double knock"). Its first knock per origin comes from a KV entry
// (FederationOptions.kvPrefixes.httpMessageSignaturesSpec), so a request can pick the
// scheme of its first knock by writing that entry; every outgoing request is logged with
// the scheme it was signed with and the status it got, so a test can tell whether the
// first knock was accepted or Fedify had to fall back.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import {
  createFederation,
  generateCryptoKeyPair,
  MemoryKvStore,
  parseNodeInfo,
} from "@fedify/fedify";
import {
  Accept,
  Activity,
  Block,
  Create,
  Endpoints,
  Follow,
  Hashtag,
  isActor,
  Mention,
  Note,
  Person,
  PUBLIC_COLLECTION,
  Reject,
  Undo,
} from "@fedify/vocab";
import { preloadedContexts } from "@fedify/vocab-runtime";
import { configure, getConsoleSink } from "@logtape/logtape";
import { readFileSync } from "node:fs";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    name: { type: "string", default: "peer" },
    context: { type: "string", multiple: true, default: [] },
    "check-get-signatures": { type: "boolean", default: false },
  },
});

// Fedify refuses factories for its loaders together with allowPrivateAddress (which loopback
// peers need), but its loaders consult the exported table of preloaded contexts on every
// load, so the published contexts are added there.
for (const pair of args.context) {
  const at = pair.indexOf("=");
  preloadedContexts[pair.slice(0, at)] = JSON.parse(readFileSync(pair.slice(at + 1), "utf8"));
}

if (process.env.PEER_DEBUG) {
  await configure({
    sinks: { console: getConsoleSink() },
    loggers: [
      { category: "fedify", sinks: ["console"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: ["console"], lowestLevel: "warning" },
    ],
  });
}

const IDENTIFIER = args.name;
const SPEC_PREFIX = ["spore-peer", "firstKnock"];
const CAVAGE = "draft-cavage-http-signatures-12";
const RFC9421 = "rfc9421";

/** What the test can read back: every list is append-only until POST /_control/reset. */
const log = { received: [], unverified: [], inbound: [], outgoing: [], errors: [] };
const followers = new Map(); // actor id -> recipient (id, inboxId, endpoints)

function schemeOf(headers) {
  if (headers.has("signature-input")) return RFC9421;
  if (headers.has("signature")) return CAVAGE;
  return "unsigned";
}

// Record every request Fedify sends (deliveries and signed GETs) with its signature
// scheme and the status it got; Fedify calls the global fetch at call time.
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const req = input instanceof Request ? input : null;
  const headers = req ? req.headers : new Headers(init?.headers);
  const entry = {
    method: (init?.method ?? req?.method ?? "GET").toUpperCase(),
    url: String(req ? req.url : input),
    scheme: schemeOf(headers),
    status: null,
  };
  log.outgoing.push(entry);
  try {
    const response = await realFetch(input, init);
    entry.status = response.status;
    if (response.status >= 400) entry.detail = (await response.clone().text()).slice(0, 500);
    return response;
  } catch (error) {
    entry.error = String(error?.message ?? error);
    throw error;
  }
};

const keys = {
  rsa: await generateCryptoKeyPair("RSASSA-PKCS1-v1_5"),
  ed25519: await generateCryptoKeyPair("Ed25519"),
  // Never published: signing with it must be refused by any verifier.
  wrong: await generateCryptoKeyPair("RSASSA-PKCS1-v1_5"),
};

let federation; // created once the port (and so the origin) is known
const server = createServer((req, res) => {
  handle(req, res).catch((error) => {
    log.errors.push(String(error?.stack ?? error));
    if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(error?.message ?? error));
  });
});
await new Promise((resolve) => server.listen(Number(args.port), args.host, resolve));
const origin = `http://${args.host}:${server.address().port}`;

const kv = new MemoryKvStore();
federation = createFederation({
  kv,
  origin,
  allowPrivateAddress: true, // loopback peers only: this disables Fedify's SSRF guard
  kvPrefixes: { httpMessageSignaturesSpec: SPEC_PREFIX },
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== IDENTIFIER) return null;
    const pairs = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: "Fedify interop peer",
      summary: "A Fedify 2.3.6 actor that SPORE's interop tests talk to.",
      inbox: ctx.getInboxUri(identifier),
      followers: ctx.getFollowersUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      publicKey: pairs[0].cryptographicKey,
      assertionMethods: pairs.map((pair) => pair.multikey),
    });
  })
  .setKeyPairsDispatcher((_ctx, identifier) =>
    identifier === IDENTIFIER ? [keys.rsa, keys.ed25519] : [],
  )
  .authorize(
    async (ctx) =>
      !args["check-get-signatures"] || schemeOf(ctx.request.headers) === "unsigned" || (await ctx.getSignedKeyOwner()) != null,
  );

federation.setFollowersDispatcher("/users/{identifier}/followers", (_ctx, identifier) =>
  identifier === IDENTIFIER ? { items: [...followers.values()] } : null,
);

async function summarize(activity) {
  const entry = {
    type: activity.constructor.name,
    id: activity.id?.href ?? null,
    actor: activity.actorId?.href ?? null,
    object: activity.objectId?.href ?? null,
    json: await activity.toJsonLd(),
  };
  try {
    if (activity instanceof Create) {
      const object = await activity.getObject();
      if (object != null) entry.parsed = await parseObject(object);
    } else if (activity instanceof Undo || activity instanceof Accept || activity instanceof Reject) {
      const inner = await activity.getObject();
      if (inner != null) entry.innerType = inner.constructor.name;
    }
  } catch (error) {
    // Reported, not thrown: a failing listener would make Fedify answer 500 to the sender.
    entry.objectError = String(error?.message ?? error);
  }
  return entry;
}

/** The object as Fedify's vocabulary classes see it: what a Mastodon-like client renders. */
async function parseObject(object) {
  const tags = [];
  for await (const tag of object.getTags()) {
    tags.push({ type: tag.constructor.name, name: tag.name?.toString() ?? null, href: tag.href?.href ?? null });
  }
  return {
    type: object.constructor.name,
    id: object.id?.href ?? null,
    attributedTo: object.attributionId?.href ?? null,
    content: object.content?.toString() ?? null,
    url: object.url?.href ?? null,
    inReplyTo: object.replyTargetId?.href ?? null,
    to: object.toIds.map((u) => u.href),
    cc: object.ccIds.map((u) => u.href),
    tags,
    hashtags: tags.filter((t) => t.type === Hashtag.name).map((t) => t.name),
    json: await object.toJsonLd(),
  };
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Follow, async (ctx, follow) => {
    log.received.push(await summarize(follow));
    const follower = await follow.getActor();
    if (follower == null || follow.objectId?.href !== ctx.getActorUri(IDENTIFIER).href) return;
    followers.set(follower.id.href, follower);
    // Answer after Fedify has replied 202 to the follower, as a queued server would.
    setImmediate(() => {
      const accept = new Accept({
        id: new URL(`${ctx.getActorUri(IDENTIFIER).href}#accepts/${crypto.randomUUID()}`),
        actor: ctx.getActorUri(IDENTIFIER),
        object: follow,
      });
      ctx.sendActivity({ identifier: IDENTIFIER }, follower, accept).catch((error) => {
        log.errors.push(`accept: ${error?.message ?? error}`);
      });
    });
  })
  .on(Undo, async (ctx, undo) => {
    log.received.push(await summarize(undo));
    const inner = await undo.getObject();
    if (inner instanceof Follow && undo.actorId != null) followers.delete(undo.actorId.href);
  })
  .on(Activity, async (_ctx, activity) => {
    // Accept, Reject, Create, Block and everything else land here with their class name.
    log.received.push(await summarize(activity));
  })
  .onUnverifiedActivity((_ctx, activity, reason) => {
    log.unverified.push({ type: activity.constructor.name, id: activity.id?.href ?? null, reason: reason.type });
  })
  .onError((_ctx, error) => {
    log.errors.push(`inbox: ${error?.message ?? error}`);
  });

function activityIdOf(body) {
  try {
    return JSON.parse(body.toString("utf8")).id ?? null;
  } catch {
    return null;
  }
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function handle(req, res) {
  const url = new URL(req.url, origin);
  const body = await readBody(req);
  if (url.pathname.startsWith("/_control/")) {
    const input = body.length ? JSON.parse(body.toString("utf8")) : {};
    const [status, output] = await control(req.method, url, input);
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(output));
    return;
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const request = new Request(url, {
    method: req.method,
    headers,
    body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
  });
  const response = await federation.fetch(request, { contextData: undefined });
  if (req.method === "POST" || url.pathname.startsWith("/users/")) {
    const entry = { method: req.method, path: url.pathname, scheme: schemeOf(headers), status: response.status };
    if (req.method === "POST") entry.activity = activityIdOf(body);
    if (response.status >= 400) entry.detail = (await response.clone().text()).slice(0, 500);
    if (response.status >= 400 && req.method === "POST") entry.body = body.toString("utf8").slice(0, 4000);
    log.inbound.push(entry);
  }
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
}

/** Choose the scheme of Fedify's first knock towards `target`'s origin (null: Fedify's default). */
async function setFirstKnock(target, scheme) {
  const key = [...SPEC_PREFIX, new URL(target).origin];
  if (scheme == null) await kv.delete(key);
  else if (scheme === RFC9421 || scheme === CAVAGE) await kv.set(key, scheme);
  else throw new Error(`unknown signature scheme: ${scheme}`);
}

async function lookup(ctx, target, { signed = false } = {}) {
  const documentLoader = signed ? await ctx.getDocumentLoader({ identifier: IDENTIFIER }) : undefined;
  return await ctx.lookupObject(target, documentLoader ? { documentLoader } : {});
}

async function describe(object) {
  const out = { type: object.constructor.name, id: object.id?.href ?? null, json: await object.toJsonLd() };
  if (isActor(object)) {
    const key = await object.getPublicKey();
    out.actor = {
      preferredUsername: object.preferredUsername?.toString() ?? null,
      name: object.name?.toString() ?? null,
      inbox: object.inboxId?.href ?? null,
      outbox: object.outboxId?.href ?? null,
      followers: object.followersId?.href ?? null,
      following: object.followingId?.href ?? null,
      sharedInbox: object.endpoints?.sharedInbox?.href ?? null,
      publicKeyId: key?.id?.href ?? null,
      publicKeyOwner: key?.ownerId?.href ?? null,
      publicKeyAlgorithm: key?.publicKey?.algorithm?.name ?? null,
    };
  }
  return out;
}

function buildActivity(ctx, input, recipient) {
  const me = ctx.getActorUri(IDENTIFIER);
  const id = new URL(`${me.href}#${input.activity.toLowerCase()}/${crypto.randomUUID()}`);
  switch (input.activity) {
    case "Follow":
      return new Follow({ id, actor: me, object: recipient.id });
    case "Undo-Follow":
      if (!input.followId) throw new Error("Undo-Follow needs followId (the id of the Follow to undo)");
      return new Undo({ id, actor: me, object: new Follow({ id: new URL(input.followId), actor: me, object: recipient.id }) });
    case "Block":
      return new Block({ id, actor: me, object: recipient.id });
    case "Create-Note": {
      const noteId = new URL(`${me.href}/notes/${crypto.randomUUID()}`);
      const tag = input.hashtag ?? "spore";
      return new Create({
        id,
        actor: me,
        to: PUBLIC_COLLECTION,
        cc: recipient.id,
        object: new Note({
          id: noteId,
          attribution: me,
          to: PUBLIC_COLLECTION,
          cc: recipient.id,
          content: input.content ?? `<p>Hello from Fedify <a href="${origin}/tags/${tag}" rel="tag">#${tag}</a></p>`,
          tags: [
            new Hashtag({ name: `#${tag}`, href: new URL(`${origin}/tags/${tag}`) }),
            // input.mentions: [{href, name}], e.g. asking a node ("@node recommend ...")
            ...(input.mentions ?? []).map((m) => new Mention({ href: new URL(m.href), name: m.name })),
          ],
        }),
      });
    }
    default:
      throw new Error(`unknown activity: ${input.activity}`);
  }
}

async function send(ctx, input) {
  const recipient = await lookup(ctx, input.target);
  if (!isActor(recipient)) return [404, { ok: false, error: `not an actor: ${input.target}` }];
  const activity = buildActivity(ctx, input, recipient);
  await setFirstKnock(recipient.inboxId.href, input.scheme ?? null);
  const sender = input.wrongKey
    ? [{ keyId: (await ctx.getActorKeyPairs(IDENTIFIER))[0].keyId, privateKey: keys.wrong.privateKey }]
    : { identifier: IDENTIFIER };
  const before = log.outgoing.length;
  const result = { id: activity.id.href, json: await activity.toJsonLd() };
  try {
    await ctx.sendActivity(sender, recipient, activity, { immediate: true, preferSharedInbox: !!input.sharedInbox });
    result.ok = true;
  } catch (error) {
    result.ok = false;
    result.error = String(error?.message ?? error);
  }
  result.attempts = log.outgoing.slice(before).filter((e) => e.method === "POST");
  return [200, result];
}

async function control(method, url, input) {
  const ctx = federation.createContext(new URL(origin), undefined);
  const route = `${method} ${url.pathname}`;
  try {
    switch (route) {
      case "GET /_control/health":
        return [200, { ok: true, origin, actor: ctx.getActorUri(IDENTIFIER).href }];
      case "GET /_control/log":
        return [200, { ...log, followers: [...followers.keys()] }];
      case "POST /_control/reset":
        for (const list of Object.values(log)) list.length = 0;
        return [200, { ok: true }];
      case "POST /_control/lookup": {
        await setFirstKnock(input.target.startsWith("http") ? input.target : origin, input.scheme ?? null);
        const before = log.outgoing.length;
        const object = await lookup(ctx, input.target, { signed: !!input.signed });
        const requests = log.outgoing.slice(before);
        if (object == null) return [200, { ok: false, error: `lookup failed: ${input.target}`, requests }];
        return [200, { ok: true, ...(await describe(object)), requests }];
      }
      case "POST /_control/send":
        return await send(ctx, input);
      case "POST /_control/nodeinfo": {
        // Fedify's getNodeInfo() only fetches public addresses, so the two documents are fetched
        // here and handed to Fedify's own NodeInfo parser (strict unless told otherwise).
        const wellKnown = await (await fetch(new URL("/.well-known/nodeinfo", input.url))).json();
        const link = wellKnown.links?.find((l) => /nodeinfo\.diaspora\.software\/ns\/schema\/2\.[01]$/.test(l.rel));
        if (link?.href == null) return [200, { ok: false, error: "no NodeInfo 2.0/2.1 link", wellKnown }];
        const document = await (await fetch(link.href)).json();
        const info = parseNodeInfo(document, { tryBestEffort: input.parse === "best-effort" });
        if (info == null) return [200, { ok: false, error: "Fedify's parser refused the NodeInfo document", document }];
        return [200, { ok: true, nodeinfo: JSON.parse(JSON.stringify(info)) }];
      }
      default:
        return [404, { ok: false, error: `no control route ${route}` }];
    }
  } catch (error) {
    return [200, { ok: false, error: String(error?.message ?? error) }];
  }
}

process.stdout.write(`${JSON.stringify({ ready: true, origin, actor: `${origin}/users/${IDENTIFIER}` })}\n`);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
