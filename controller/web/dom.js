// The console's small DOM builders, shared by its pages (requests, users, share, charts,
// fleet) so a form field or a button is built one way everywhere. No framework: the console
// is a few plain modules served by the controller.

import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// A label with a translated caption (re-translated on a language switch) and its control.
export function field(key, control) {
  const l = el("label");
  const s = el("span", "", t(key));
  s.dataset.i18n = key;
  l.append(s, " ", control);
  return l;
}

export function input(id, type, value) {
  const i = el("input");
  i.id = id;
  i.type = type || "text";
  if (value !== undefined) i.value = value;
  return i;
}

export function select(id, options) {
  const s = el("select");
  s.id = id;
  for (const [value, label] of options) s.add(new Option(label, value));
  return s;
}

export function button(cls, key, onClick) {
  const b = el("button", cls, t(key));
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

// A datetime-local input's value, read as Beijing time (the users' clock), in UTC microseconds.
export function inputUs(id) {
  const v = $(id).value;
  return new Date(`${v.length === 16 ? `${v}:00` : v}+08:00`).getTime() * 1000;
}
