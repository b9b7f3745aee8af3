// Footage requests across organisations (申请调阅 → 审批): ask the organisation owning a camera
// for its footage in the playback window with a reason and case id; that organisation's admins
// see it under "awaiting my approval" and approve (a share grant for the requester in person)
// or refuse with a note; the requester opens an approved request like a share link. Every
// step is the controller's decision and is in its audit chain under the request's id.

import { api, query, session } from "./api.js";
import { addWords, shanghai, t } from "./i18n.js";
import { $, el, field, input, button, inputUs } from "./dom.js";

addWords(
  {
    "req.title": "申请调阅其他单位的录像",
    "req.note": "录像时段取回放页的“从/到”；对方单位的管理员审批后生成仅限本人使用的授权。",
    "req.cameras": "摄像机编号（逗号分隔）",
    "req.submit": "提交申请",
    "req.mine": "我单位的申请",
    "req.toMe": "待我单位审批",
    "req.open": "打开",
    "req.note.ph": "审批意见",
    "req.sent": "申请已提交，等待 {org} 审批（编号 {id}）",
    "req.to": "向 {org}",
    "req.from": "来自 {org}/{user}",
    "req.state.pending": "待审批",
    "req.state.approved": "已批准",
    "req.state.refused": "已拒绝",
    "req.state.lapsed": "逾期未审批",
    "req.state.expired": "授权已到期",
    "req.state.revoked": "授权已撤销",
    "req.until": "有效至 {at}",
    "req.none": "无",
  },
  {
    "req.title": "Request footage from another organisation",
    "req.note": "The window is the playback view's From/To; once the owner's admin approves, a grant for you alone is minted.",
    "req.cameras": "Camera ids (comma-separated)",
    "req.submit": "Send request",
    "req.mine": "Requests from my organisation",
    "req.toMe": "Awaiting my organisation's approval",
    "req.open": "Open",
    "req.note.ph": "Note",
    "req.sent": "Request sent to {org} (id {id})",
    "req.to": "to {org}",
    "req.from": "from {org}/{user}",
    "req.state.pending": "pending",
    "req.state.approved": "approved",
    "req.state.refused": "refused",
    "req.state.lapsed": "lapsed unanswered",
    "req.state.expired": "grant expired",
    "req.state.revoked": "grant revoked",
    "req.until": "valid until {at}",
    "req.none": "none",
  },
);

export class Requests {
  // options: camera() -> selected camera id, orgName(id), open(link), onError(err)
  constructor(options) {
    this.opts = options;
    this.built = false;
  }

  build() {
    if (this.built) return;
    this.built = true;
    const box = el("section", "requests");
    box.id = "requests";
    const form = el("form", "share-form");
    form.id = "req-form";
    const ops = el("span", "ops");
    for (const op of ["live", "playback", "download"]) {
      const c = input(`req-op-${op}`, "checkbox");
      c.checked = op === "playback";
      const l = el("label");
      l.append(c, ` ${t(`op.${op}`)}`);
      ops.append(l);
    }
    const submit = el("button", "", t("req.submit"));
    submit.type = "submit";
    submit.id = "req-submit";
    form.append(
      field("req.cameras", input("req-cameras")),
      field("share.ops", ops),
      field("share.reason", input("req-reason")),
      field("play.case", input("req-case")),
      field("share.hours", input("req-hours", "number", "24")),
      submit,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.ask().catch(this.opts.onError);
    });
    const out = el("p", "online");
    out.id = "req-out";
    const mine = el("table");
    mine.id = "requests-mine";
    const toMe = el("table");
    toMe.id = "requests-to-me";
    box.append(el("h3", "", t("req.title")), el("p", "note", t("req.note")), form, out, el("h3", "", t("req.toMe")), toMe, el("h3", "", t("req.mine")), mine);
    $("view-share").append(box);
  }

  async refresh() {
    this.build();
    if (!$("req-cameras").value) $("req-cameras").value = this.opts.camera() || "";
    const [mine, toMe] = await Promise.all([
      api("GET", `/api/v1/share-requests${query({ direction: "mine" })}`),
      api("GET", `/api/v1/share-requests${query({ direction: "to_me" })}`),
    ]);
    $("requests-mine").replaceChildren(...this.rows(mine, false));
    $("requests-to-me").replaceChildren(...this.rows(toMe, true));
  }

  async ask() {
    const body = {
      cameras: $("req-cameras").value.split(/[,，\s]+/).filter(Boolean),
      from_us: inputUs("from"),
      to_us: inputUs("to"),
      operations: ["live", "playback", "download"].filter((op) => $(`req-op-${op}`).checked),
      reason: $("req-reason").value.trim(),
      case_id: $("req-case").value.trim(),
      lifetime_s: Math.max(60, Math.round((Number($("req-hours").value) || 24) * 3600)),
    };
    const r = await api("POST", "/api/v1/share-requests", body);
    $("req-out").textContent = t("req.sent", { org: this.opts.orgName(r.owner_org), id: r.request_id.slice(0, 12) });
    await this.refresh();
  }

  rows(list, incoming) {
    if (!list.length) return [el("tr", "note", t("req.none"))];
    return list.map((r) => {
      const tr = el("tr");
      tr.dataset.request = r.request_id;
      tr.dataset.state = r.state;
      const who = incoming ? t("req.from", { org: this.opts.orgName(r.requester_org), user: r.requester_user }) : t("req.to", { org: this.opts.orgName(r.owner_org) });
      const good = r.state === "approved" ? "online" : r.state === "pending" ? "" : "offline";
      const state = `${t(`req.state.${r.state}`)}${r.state === "approved" ? ` · ${t("req.until", { at: shanghai(r.expires_us) })}` : ""}${r.note ? ` · ${r.note}` : ""}`;
      tr.append(
        el("td", "", r.request_id.slice(0, 12)),
        el("td", "", who),
        el("td", "", r.cameras.join(", ")),
        el("td", "", `${shanghai(r.from_us)} – ${shanghai(r.to_us)}`),
        el("td", "", r.operations.map((o) => t(`op.${o}`)).join("、")),
        el("td", "", `${r.reason}${r.case_id ? ` (${r.case_id})` : ""}`),
        el("td", `state ${good}`, state),
      );
      const td = el("td");
      if (incoming && r.state === "pending" && session.user.role === "admin") {
        const note = input("", "text");
        note.className = "req-note";
        note.placeholder = t("req.note.ph");
        td.append(
          note,
          button("approve", "share.approve", () => this.decide(r.request_id, "approve", note.value).catch(this.opts.onError)),
          button("refuse", "share.refuse", () => this.decide(r.request_id, "refuse", note.value).catch(this.opts.onError)),
        );
      }
      if (!incoming && r.state === "approved" && r.requester_user === session.user.user_id) {
        td.append(button("open", "req.open", () => this.open(r).catch(this.opts.onError)));
      }
      tr.append(td);
      return tr;
    });
  }

  async decide(id, verb, note) {
    await api("POST", `/api/v1/share-requests/${id}/${verb}`, { note: note.trim() });
    await this.refresh();
  }

  // The approved grant opens exactly like a share link: playback of the requested window.
  async open(r) {
    const grant = await api("POST", `/api/v1/share-requests/${r.request_id}/grant`);
    const camera = r.cameras[0];
    this.opts.open(`#share=${encodeURIComponent(grant.token)}&camera=${encodeURIComponent(camera)}&from=${r.from_us}&to=${r.to_us}`);
  }
}
