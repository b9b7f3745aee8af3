// User admin (用户管理), for organisation admins: the accounts of their organisation (every
// organisation's for the city's admins), create one with a role, disable or re-enable it.
// Disabling ends the account's sessions at once. Every change is the controller's decision
// and an audited admin change; a refusal is shown as a sentence.

import { api, session } from "./api.js";
import { addWords, shanghai, t } from "./i18n.js";
import { $, el, field, select } from "./dom.js";

addWords(
  {
    "nav.users": "用户",
    "users.title": "用户管理",
    "users.id": "用户名",
    "users.name": "姓名",
    "users.org": "单位",
    "users.role": "角色",
    "users.password": "初始密码",
    "users.create": "新建用户",
    "users.created": "已创建用户 {id}",
    "users.state": "状态",
    "users.lastLogin": "最后登录",
    "users.enabled": "启用",
    "users.disabled": "已停用",
    "users.disable": "停用",
    "users.enable": "启用",
    "role.admin": "管理员",
    "role.operator": "操作员",
    "role.viewer": "查看员",
    "role.installer": "安装员",
  },
  {
    "nav.users": "Users",
    "users.title": "User admin",
    "users.id": "User id",
    "users.name": "Name",
    "users.org": "Organisation",
    "users.role": "Role",
    "users.password": "Initial password",
    "users.create": "Create user",
    "users.created": "User {id} created",
    "users.state": "State",
    "users.lastLogin": "Last login",
    "users.enabled": "enabled",
    "users.disabled": "disabled",
    "users.disable": "Disable",
    "users.enable": "Enable",
    "role.admin": "admin",
    "role.operator": "operator",
    "role.viewer": "viewer",
    "role.installer": "installer",
  },
);

const ROLES = ["operator", "viewer", "admin", "installer"];

export class Users {
  // options: orgs() -> [{org_id, name}], orgName(id), onError(err)
  constructor(options) {
    this.opts = options;
    this.built = false;
  }

  build() {
    if (this.built) return;
    this.built = true;
    const view = $("view-users");
    const form = el("form", "share-form");
    form.id = "user-form";
    const cityAdmin = this.opts.orgs().some((o) => o.org_id === session.user.org_id && o.kind === "city");
    const orgs = cityAdmin ? this.opts.orgs() : this.opts.orgs().filter((o) => o.org_id === session.user.org_id);
    const id = el("input");
    id.id = "user-id";
    id.required = true;
    id.autocomplete = "off";
    const name = el("input");
    name.id = "user-name";
    const password = el("input");
    password.id = "user-password";
    password.type = "password";
    password.autocomplete = "new-password";
    password.required = true;
    const submit = el("button", "", t("users.create"));
    submit.type = "submit";
    submit.id = "user-submit";
    const org = select("user-org", orgs.map((o) => [o.org_id, o.name]));
    org.value = session.user.org_id;
    form.append(
      field("users.id", id),
      field("users.name", name),
      field("users.org", org),
      field("users.role", select("user-role", ROLES.map((r) => [r, t(`role.${r}`)]))),
      field("users.password", password),
      submit,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.create().catch(this.opts.onError);
    });
    const out = el("p", "online");
    out.id = "user-out";
    const table = el("table");
    table.id = "users";
    view.append(el("h2", "", t("users.title")), form, out, table);
  }

  async refresh() {
    this.build();
    const rows = await api("GET", "/api/v1/users");
    const head = el("tr");
    for (const k of ["users.id", "users.name", "users.org", "users.role", "users.state", "users.lastLogin"]) head.append(el("th", "", t(k)));
    $("users").replaceChildren(
      head,
      ...rows.map((u) => {
        const tr = el("tr");
        tr.dataset.user = u.user_id;
        tr.append(
          el("td", "", u.user_id),
          el("td", "", u.display_name),
          el("td", "", this.opts.orgName(u.org_id)),
          el("td", "", t(`role.${u.role}`)),
          el("td", u.disabled ? "offline" : "online", u.disabled ? t("users.disabled") : t("users.enabled")),
          el("td", "", shanghai(u.last_login_us)),
        );
        const td = el("td");
        if (u.user_id !== session.user.user_id) {
          const verb = u.disabled ? "enable" : "disable";
          const b = el("button", verb, t(`users.${verb}`));
          b.type = "button";
          b.addEventListener("click", () => this.toggle(u.user_id, verb).catch(this.opts.onError));
          td.append(b);
        }
        tr.append(td);
        return tr;
      }),
    );
  }

  async create() {
    const body = {
      user_id: $("user-id").value.trim(),
      display_name: $("user-name").value.trim(),
      org_id: $("user-org").value,
      role: $("user-role").value,
      password: $("user-password").value,
    };
    const u = await api("POST", "/api/v1/users", body);
    $("user-out").textContent = t("users.created", { id: u.user_id });
    $("user-password").value = "";
    await this.refresh();
  }

  async toggle(userId, verb) {
    await api("POST", `/api/v1/users/${encodeURIComponent(userId)}/${verb}`);
    await this.refresh();
  }
}
