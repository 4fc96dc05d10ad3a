// The live network view: nodes (circles) and learning groups (squares) joined by membership, redrawn
// whenever /browse/network.json changes. Hand-written on SVG with a fixed radial layout (groups inside,
// nodes on the rim, each beside its first group): positions stay put between refreshes, which a
// force-directed library would not give without more code than this whole file.
(() => {
  const svg = document.getElementById("network");
  const status = document.getElementById("network-status");
  if (!svg) return;
  const NS = "http://www.w3.org/2000/svg";
  const every = Number(svg.dataset.refresh || 3000);
  let last = "";

  const element = (name, attributes, parent) => {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    parent.appendChild(node);
    return node;
  };

  const layout = (data, width, height) => {
    const cx = width / 2, cy = height / 2;
    const inner = Math.min(width, height) * 0.18, outer = Math.min(width, height) * 0.42;
    const at = new Map();
    data.groups.forEach((group, i) => {
      const angle = (2 * Math.PI * i) / Math.max(1, data.groups.length) - Math.PI / 2;
      const r = data.groups.length > 1 ? inner : 0;
      at.set(group.id, [cx + r * Math.cos(angle), cy + r * Math.sin(angle), angle]);
    });
    const firstGroup = new Map();
    data.edges.forEach((edge) => { if (!firstGroup.has(edge.node)) firstGroup.set(edge.node, edge.group); });
    const order = [...data.nodes].sort((a, b) => {
      const ga = data.groups.findIndex((g) => g.id === firstGroup.get(a.id));
      const gb = data.groups.findIndex((g) => g.id === firstGroup.get(b.id));
      return ga - gb || a.id.localeCompare(b.id);
    });
    order.forEach((node, i) => {
      const angle = (2 * Math.PI * i) / Math.max(1, order.length) - Math.PI / 2;
      at.set(node.id, [cx + outer * Math.cos(angle), cy + outer * Math.sin(angle), angle]);
    });
    return at;
  };

  const draw = (data) => {
    const width = svg.clientWidth || 800, height = svg.clientHeight || 420;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const at = layout(data, width, height);
    const edges = element("g", { class: "edges" }, svg);
    data.edges.forEach((edge) => {
      const [x1, y1] = at.get(edge.node), [x2, y2] = at.get(edge.group);
      element("line", { class: "edge", x1, y1, x2, y2 }, edges);
    });
    const link = (item, kind, draw) => {
      const a = element("a", { href: item.href, class: `${kind} ${item.local ? "local" : "remote"}` }, svg);
      a.dataset.id = item.id;
      element("title", {}, a).textContent = `${kind} ${item.id}${item.round != null ? `, round ${item.round}` : ""}`;
      draw(a, ...at.get(item.id));
      return a;
    };
    data.groups.forEach((group) => link(group, "group", (a, x, y) => {
      element("rect", { x: x - 9, y: y - 9, width: 18, height: 18, rx: 3 }, a);
      element("text", { x: x + 13, y: y + 4 }, a).textContent = group.label;
    }));
    // Past a few dozen nodes the rim has no room for names: they stay in each node's tooltip.
    const named = data.nodes.length <= 40;
    data.nodes.forEach((node) => link(node, "node", (a, x, y, angle) => {
      element("circle", { cx: x, cy: y, r: node.local ? 8 : 6 }, a);
      if (!named) return;
      const right = Math.cos(angle) >= 0;
      element("text", { x: x + (right ? 11 : -11), y: y + 4, "text-anchor": right ? "start" : "end" }, a)
        .textContent = node.label + (node.round != null ? ` · r${node.round}` : "");
    }));
    const round = data.round != null ? `round ${data.round} · ` : "";
    status.textContent = `${round}${data.nodes.length} nodes, ${data.groups.length} groups, ` +
      `${data.edges.length} memberships · updated ${new Date().toLocaleTimeString()}`;
    svg.dataset.rendered = String(data.nodes.length + data.groups.length);
  };

  const refresh = async () => {
    try {
      const response = await fetch(svg.dataset.source, { headers: { accept: "application/json" } });
      if (response.ok) {
        const text = await response.text();
        if (text !== last) { last = text; draw(JSON.parse(text)); }
        else if (status) status.textContent = status.textContent.replace(/updated .*$/, `updated ${new Date().toLocaleTimeString()}`);
      }
    } catch (error) {
      if (status) status.textContent = "network view: host not reachable, retrying";
    }
    setTimeout(refresh, every);
  };
  refresh();
})();
