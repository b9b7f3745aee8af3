// Sharing (共享) and audit (审计). Share the selected camera's footage window (or live) with
// another organisation or person for a lifetime; the answer is a grant, and a share link
// that carries it in the URL fragment (never sent to a server, so never in a log). Revoke by
// grant id. The lists (shared by me / with me) and the audit view read the controller's
// audit chain, so they show what was really minted and revoked, and by whom.

import { api, query } from "./api.js";
import { shanghai, t } from "./i18n.js";
import { $, el, field, input, inputUs } from "./dom.js";

export class Sharing {
  constructor(options) {
    this.opts = options || {};
    this.built = false;
  }

  build() {
    if (this.built) return;
    this.built = true;
    const view = $("view-share");
    const form = el("form", "share-form");
    form.id = "share-form";
    const ops = el("span", "ops");
    for (const op of ["live", "playback", "download"]) {
      const c = input(`share-op-${op}`, "checkbox");
      c.value = op;
      c.checked = op === "playback";
      const l = el("label", "", "");
      l.append(c, ` ${t(`op.${op}`)}`);
      ops.append(l);
    }
    const submit = el("button", "", t("share.submit"));
    submit.type = "submit";
    submit.id = "share-submit";
    form.append(
      field("share.org", input("share-org")),
      field("share.user", input("share-user")),
      field("share.ops", ops),
      field("share.hours", input("share-hours", "number", "1")),
      field("play.case", input("share-case")),
      submit,
    );
    const out = el("div");
    out.id = "share-out";
    const lists = el("div", "lists");
    lists.append(el("h3", "", t("share.mine")), this.table("shares-mine"), el("h3", "", t("share.withMe")), this.table("shares-with-me"));
    view.append(el("h2", "", t("share.title")), el("p", "note", t("share.window")), form, out, lists);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.share().catch(this.opts.onError);
    });
    const audit = $("view-audit");
    const af = el("form", "audit-form");
    af.id = "audit-form";
    const go = el("button", "", t("audit.search"));
    go.type = "submit";
    af.append(field("audit.user", input("audit-user")), field("audit.camera", input("audit-camera")), field("audit.case", input("audit-case")), go);
    af.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.audit().catch(this.opts.onError);
    });
    const at = el("table");
    at.id = "audit-table";
    audit.append(el("h2", "", t("audit.title")), af, at);
  }

  table(id) {
    const tb = el("table");
    tb.id = id;
    return tb;
  }

  async share() {
    const camera = this.opts.camera();
    const operations = ["live", "playback", "download"].filter((op) => $(`share-op-${op}`).checked);
    const hours = Number($("share-hours").value) || 24;
    const body = {
      operations,
      cameras: [camera],
      from_us: inputUs("from"),
      to_us: inputUs("to"),
      purpose: `console share ${camera}`,
      holder_org: $("share-org").value.trim(),
      lifetime_s: Math.round(hours * 3600),
      case_id: $("share-case").value.trim(),
    };
    if ($("share-user").value.trim()) body.holder_user = $("share-user").value.trim();
    const grant = await api("POST", "/api/v1/grants", body);
    const link = `${location.origin}/#share=${encodeURIComponent(grant.token)}&camera=${encodeURIComponent(camera)}&from=${body.from_us}&to=${body.to_us}`;
    const out = $("share-out");
    const a = el("a", "share-link", link.slice(0, 80) + "…");
    a.href = link;
    a.id = "share-link";
    a.dataset.grant = grant.grant_id;
    const copy = el("button", "", t("share.link"));
    copy.type = "button";
    copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(link).then(() => (copy.textContent = t("share.copied"))));
    out.replaceChildren(el("p", "online", `${grant.grant_id} → ${grant.holder_org}${grant.holder_user ? `/${grant.holder_user}` : ""} · ${shanghai(grant.expires_us)}`), a, " ", copy);
    await this.refresh();
  }

  async refresh() {
    this.build();
    for (const [id, direction] of [["shares-mine", "mine"], ["shares-with-me", "with_me"]]) {
      const rows = await api("GET", `/api/v1/shares${query({ direction })}`).catch(() => []);
      const tb = $(id);
      tb.replaceChildren(
        ...rows.map((s) => {
          const tr = el("tr");
          tr.dataset.grant = s.grant_id;
          tr.append(
            el("td", "", s.grant_id.slice(0, 12)),
            el("td", "", direction === "mine" ? `→ ${s.holder_org}${s.holder_user ? `/${s.holder_user}` : ""}` : `← ${s.issuer_org}/${s.issuer_user}`),
            el("td", "", s.cameras.join(", ")),
            el("td", "", s.operations.map((o) => t(`op.${o}`)).join("、")),
            el("td", "", `${shanghai(s.from_us)} – ${shanghai(s.to_us)}`),
            el("td", s.revoked ? "offline" : "", s.revoked ? t("share.revoked") : shanghai(s.expires_us)),
          );
          if (!s.revoked && direction === "mine") {
            const td = el("td");
            const b = el("button", "revoke", t("share.revoke"));
            b.type = "button";
            b.addEventListener("click", () => this.revoke(s.grant_id).catch(this.opts.onError));
            td.append(b);
            tr.append(td);
          }
          return tr;
        }),
      );
    }
  }

  async revoke(grantId) {
    await api("POST", `/api/v1/grants/${grantId}/revoke`, { reason: "console revoke" });
    await this.refresh();
  }

  async audit() {
    this.build();
    const rows = await api(
      "GET",
      `/api/v1/audit${query({ user: $("audit-user").value.trim(), camera: $("audit-camera").value.trim(), case: $("audit-case").value.trim(), limit: 200 })}`,
    );
    const tb = $("audit-table");
    const head = el("tr");
    for (const k of ["audit.time", "audit.user", "audit.action", "audit.camera", "audit.case", "audit.outcome"]) head.append(el("th", "", t(k)));
    tb.replaceChildren(
      head,
      ...rows.map((e) => {
        const tr = el("tr");
        tr.append(
          el("td", "", shanghai(e.at_us)),
          el("td", "", `${e.actor_user} (${e.actor_org})`),
          el("td", "", e.action),
          el("td", "", e.camera_id),
          el("td", "", e.case_id),
          el("td", e.outcome === "ok" ? "online" : "offline", `${e.outcome}${e.reason ? ` ${e.reason}` : ""}`),
        );
        return tr;
      }),
    );
  }
}
