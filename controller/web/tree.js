// The camera tree: 市 → 区县 → 乡镇 → 村 → device → camera, each node with its online count.
// Lazy: a node's children are asked for (GET /api/v1/directory/tree, then /cameras?device=)
// only when it is opened, so a city of 17,088 endpoints opens with nine rows. Search asks the
// server (name, camera id or GB/T 28181 code) and shows the matches with their place.
// Cameras are draggable into the live grid (text/plain = camera id).

import { api, query } from "./api.js";
import { t } from "./i18n.js";

const LEVEL_AFTER = { city: "county", county: "township", township: "village", village: "device", device: "camera" };
const SEARCH_LIMIT = 200;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

export class CameraTree {
  constructor(root, options) {
    this.root = root;
    this.opts = options || {};
    this.states = new Map(); // camera id -> true (online) | false (offline)
    this.cameras = new Map(); // camera id -> camera row (every leaf ever shown)
    this.open = new Set(); // node paths that are open (refreshed on fleet changes)
    this.searchSeq = 0;
    this.build();
  }

  build() {
    this.root.replaceChildren();
    const search = el("input", "tree-search");
    search.type = "search";
    search.id = "tree-search";
    search.dataset.i18nPh = "tree.search";
    search.placeholder = t("tree.search");
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.search(search.value.trim()), 200);
    });
    this.results = el("div", "tree-results");
    this.results.id = "tree-results";
    this.results.hidden = true;
    this.list = el("ul", "tree");
    this.list.id = "tree";
    this.list.setAttribute("role", "tree");
    this.root.append(search, this.results, this.list);
    const city = this.node({ level: "city", key: "", label: t("tree.city"), total: 0, online: 0 }, {});
    city.li.id = "tree-city";
    this.list.appendChild(city.li);
    this.cityNode = city;
  }

  // One node row; `path` the filters that lead to it ({county, township, village, device}).
  node(n, path) {
    const li = el("li", `node level-${n.level}`);
    li.setAttribute("role", "treeitem");
    li.setAttribute("aria-expanded", "false");
    const row = el("div", "row");
    const toggle = el("span", "toggle", "▸");
    const label = el("span", "label", this.label(n));
    const count = el("span", "count");
    row.append(toggle, label, count);
    const kids = el("ul", "children");
    kids.hidden = true;
    li.append(row, kids);
    const item = { li, row, kids, count, n, path, loaded: false };
    li.__item = item;
    this.setCount(item, n);
    row.addEventListener("click", () => this.toggle(item));
    return item;
  }

  label(n) {
    if (n.level === "city") return t("tree.city");
    if (n.key === "") return n.level === "township" ? t("tree.mobile") : t("tree.none");
    return n.label;
  }

  setCount(item, n) {
    item.n = n;
    item.count.textContent = n.level === "city" && !n.total ? "" : t("count.online", n);
    item.count.className = `count ${n.online === n.total && n.total ? "online" : n.online ? "" : "offline"}`;
  }

  async toggle(item) {
    const opening = item.kids.hidden;
    item.kids.hidden = !opening;
    item.li.setAttribute("aria-expanded", String(opening));
    item.row.querySelector(".toggle").textContent = opening ? "▾" : "▸";
    const key = JSON.stringify(item.path);
    if (opening) this.open.add(key);
    else this.open.delete(key);
    if (opening && !item.loaded) await this.load(item);
  }

  async load(item) {
    item.loaded = true;
    item.kids.replaceChildren(el("li", "loading", t("tree.loading")));
    const next = LEVEL_AFTER[item.n.level];
    try {
      if (next === "camera") {
        const cams = await api("GET", `/api/v1/cameras${query({ device: item.path.device, limit: 500 })}`);
        item.kids.replaceChildren(...cams.map((c) => this.leaf(c)));
      } else {
        const nodes = await api("GET", `/api/v1/directory/tree${query(item.path)}`);
        item.children = nodes.map((n) => this.node(n, { ...item.path, [n.level]: n.key }));
        item.kids.replaceChildren(...item.children.map((c) => c.li));
        if (item.n.level === "city") this.setCount(item, sum(nodes));
      }
      if (!item.kids.children.length) item.kids.replaceChildren(el("li", "empty", t("tree.empty")));
    } catch (err) {
      item.loaded = false;
      item.kids.replaceChildren(el("li", "error", err.message));
    }
  }

  leaf(c, withPlace) {
    this.cameras.set(c.camera_id, c);
    const li = el("li", "camera");
    li.draggable = true;
    li.dataset.camera = c.camera_id;
    if (c.gb_code) li.dataset.code = c.gb_code;
    li.setAttribute("role", "treeitem");
    const dot = el("span", "dot");
    const name = el("span", "label", c.name || c.camera_id);
    const code = el("span", "code", c.gb_code || c.camera_id);
    li.append(dot, name, code);
    if (withPlace) li.append(el("span", "place", [c.county_name, c.township, c.village].filter(Boolean).join(" / ")));
    li.title = `${c.camera_id}${c.gb_code ? ` · ${c.gb_code}` : ""}`;
    this.paint(li);
    li.addEventListener("dragstart", (ev) => {
      ev.dataTransfer.setData("text/plain", c.camera_id);
      ev.dataTransfer.effectAllowed = "copy";
    });
    li.addEventListener("click", () => this.opts.onSelect && this.opts.onSelect(c));
    li.addEventListener("dblclick", () => this.opts.onOpen && this.opts.onOpen(c));
    return li;
  }

  paint(li) {
    const s = this.states.get(li.dataset.camera);
    li.classList.toggle("online", s === true);
    li.classList.toggle("offline", s === false);
  }

  async start() {
    await this.toggle(this.cityNode);
  }

  async search(text) {
    const seq = ++this.searchSeq;
    if (!text) {
      this.results.hidden = true;
      this.list.hidden = false;
      return;
    }
    try {
      const { items, total } = await api("GET", `/api/v1/cameras${query({ q: text, limit: SEARCH_LIMIT })}`, undefined, { withTotal: true });
      if (seq !== this.searchSeq) return; // a newer search was typed meanwhile
      const head = el("p", "note", t("tree.results", { n: total }));
      const ul = el("ul", "tree");
      ul.append(...items.map((c) => this.leaf(c, true)));
      const parts = [head, ul];
      if (total > items.length) parts.push(el("p", "note", t("tree.more", { n: items.length })));
      this.results.replaceChildren(...parts);
      this.results.hidden = false;
      this.list.hidden = true;
    } catch (err) {
      this.results.replaceChildren(el("p", "error", err.message));
      this.results.hidden = false;
    }
  }

  // Fleet push: camera id -> online. Leaves repaint now; open nodes re-count (debounced).
  setStates(states) {
    this.states = states;
    for (const li of this.root.querySelectorAll("li.camera")) this.paint(li);
    clearTimeout(this.recount);
    this.recount = setTimeout(() => this.refreshCounts(), 1500);
  }

  async refreshCounts() {
    const walk = async (item) => {
      if (item.kids.hidden || !item.children) return;
      const nodes = await api("GET", `/api/v1/directory/tree${query(item.path)}`).catch(() => null);
      if (!nodes) return;
      const byKey = new Map(nodes.map((n) => [n.key, n]));
      for (const child of item.children) {
        const n = byKey.get(child.n.key);
        if (n) this.setCount(child, n);
        await walk(child);
      }
      if (item.n.level === "city") this.setCount(item, sum(nodes));
    };
    await walk(this.cityNode);
  }

  relabel() {
    for (const li of this.root.querySelectorAll("li.node")) {
      const item = li.__item;
      if (item) item.row.querySelector(".label").textContent = this.label(item.n);
    }
  }
}

function sum(nodes) {
  return nodes.reduce(
    (a, n) => ({ level: "city", key: "", label: "", total: a.total + n.total, online: a.online + n.online, offline: a.offline + n.offline }),
    { total: 0, online: 0, offline: 0 },
  );
}
