// Vigil console: words and times. zh-CN first, English on the switch; every label, state and
// message goes through t(), and every API refusal is shown as a sentence from its reason code
// (never a raw code such as "manifestLoadError (HTTP 404)"). Times are Asia/Shanghai with the
// date, whatever the browser's own zone is.

const ZH = {
  title: "Vigil 视频共享控制中心",
  "lang.switch": "English",
  "login.title": "登录",
  "login.user": "用户",
  "login.password": "密码",
  "login.submit": "登录",
  logout: "退出",
  "nav.fleet": "总览",
  "nav.live": "实时",
  "nav.playback": "回放",
  "nav.share": "共享",
  "nav.audit": "审计",
  "tree.title": "摄像机目录",
  "tree.search": "按名称或国标编码搜索",
  "tree.city": "全市",
  "tree.none": "（未编）",
  "tree.mobile": "移动终端",
  "tree.results": "搜索结果：{n} 个",
  "tree.more": "仅显示前 {n} 个，请缩小范围",
  "tree.loading": "加载中…",
  "tree.empty": "无摄像机",
  "count.online": "在线 {online}/{total}",
  "grid.layout": "分屏",
  "grid.drop": "把摄像机拖到这里",
  "grid.close": "关闭",
  "grid.unavailable": "实时模块未加载：实时不可用",
  "fleet.devices": "设备",
  "fleet.cameras": "摄像机",
  "fleet.alerts": "告警",
  "fleet.online": "在线",
  "fleet.offline": "离线",
  "fleet.unknown": "未知",
  "fleet.live": "实时更新",
  "fleet.stale": "连接中断，正在重连…",
  "fleet.device": "设备",
  "fleet.county": "区县 / 站点",
  "fleet.state": "状态",
  "fleet.camerasUp": "在线摄像机",
  "fleet.lastSeen": "最后上报",
  "fleet.gb": "国标",
  "fleet.channels": "{n} 个通道",
  "fleet.gbRegistered": "注册时间",
  "fleet.gbExpires": "注册到期",
  "fleet.gbKeepalive": "最后心跳",
  "fleet.gbContact": "地址",
  "fleet.gbReplica": "所在控制器",
  "fleet.gbSilent": "无应答起始",
  "fleet.channelsOff": "{n} 个离线",
  "fleet.ch.catalog_off": "通道离线（设备目录报告 OFF）",
  "fleet.ch.device_offline": "离线（设备离线）",
  "fleet.chStatus": "目录状态 {s}（{at}）",
  "fleet.noAlerts": "无告警",
  "fleet.raised": "发生于 {at}，已持续 {dur}",
  "fleet.ack": "确认",
  "fleet.acked": "已确认",
  "fleet.detail": "设备详情",
  "fleet.noFleet": "本控制器未运行设备监控（MQTT）",
  "fleet.more": "显示 {n} 台（共 {total} 台，离线优先）；其余请在目录中查找",
  "cam.camera": "摄像机",
  "cam.name": "名称",
  "cam.code": "国标编码",
  "cam.area": "区域",
  "cam.class": "类别",
  "cam.device": "设备",
  "cam.state": "状态",
  "cam.detail": "详情",
  "cam.reason": "原因",
  "cam.media": "编码",
  "play.title": "回放",
  "play.camera": "摄像机",
  "play.from": "从",
  "play.to": "到",
  "play.range": "回放",
  "play.live": "实时",
  "play.zone": "北京时间",
  "play.date": "日期",
  "play.speed": "倍速",
  "play.snapshot": "截图",
  "play.fetch": "从设备调取",
  "play.deadline": "期限（空：一小时内）",
  "play.export": "导出证据",
  "play.case": "案件编号",
  "play.asking": "正在申请授权…",
  "play.playing": "正在回放 {camera}（授权 {grant}{how}）",
  "play.h264": "，本浏览器使用 H.264",
  "play.failed": "回放失败：{why}",
  "play.problem": "回放异常：{why}",
  "play.cannotStart": "无法开始播放：{why}",
  "play.noHls": "hls.js 未安装（运行 make web）：回放不可用",
  "play.noMpegts": "mpegts.js 未安装（运行 make web）：实时不可用",
  "play.others": "其余功能正常。",
  "play.seeked": "已定位到 {at}",
  "play.live.started": "实时 {camera}",
  "play.unmute": "开启声音",
  "tl.cloud": "云端",
  "tl.device": "仅在设备",
  "tl.gap": "缺失",
  "tl.evicted": "已清除",
  "tl.events": "事件",
  "job.title": "调取任务",
  "job.progress": "{state} {percent}%（{done}/{total} 段）",
  "job.requested": "已提交调取任务 {job}",
  "export.done": "证据已导出：{file}",
  "share.title": "共享",
  "share.mine": "我共享的",
  "share.withMe": "共享给我的",
  "share.org": "对方单位",
  "share.user": "对方用户（可空）",
  "share.ops": "操作",
  "share.hours": "有效期（小时）",
  "share.window": "录像时段",
  "share.submit": "共享",
  "share.revoke": "撤销",
  "share.revoked": "已撤销",
  "share.link": "复制共享链接",
  "share.copied": "链接已复制",
  "share.request": "申请调阅",
  "share.reason": "事由",
  "share.approve": "批准",
  "share.refuse": "拒绝",
  "share.delegate": "转授权",
  "audit.title": "审计",
  "audit.user": "用户",
  "audit.camera": "摄像机",
  "audit.case": "案件",
  "audit.search": "查询",
  "audit.time": "时间",
  "audit.action": "操作",
  "audit.outcome": "结果",
  "audit.chain": "审计链",
  "op.live": "实时",
  "op.playback": "回放",
  "op.download": "下载",
  "state.starting": "启动中",
  "state.streaming": "在线",
  "state.no_keyframe_yet": "等待关键帧",
  "state.unsupported_codec": "不支持的编码",
  "state.auth_failed": "认证失败",
  "state.unreachable": "无法连接",
  "state.stalled": "卡顿",
  "state.disconnected": "断开",
  "state.file_error": "文件错误",
  "state.failed": "故障",
  "level.info": "提示",
  "level.warning": "警告",
  "level.critical": "严重",
  "dur.s": "{n} 秒",
  "dur.m": "{n} 分钟",
  "dur.h": "{n} 小时",
  "audio.none": "无音频",
  "audio.mono": "单声道",
  "audio.stereo": "立体声",
};

const EN = {
  title: "Vigil video sharing control centre",
  "lang.switch": "中文",
  "login.title": "Log in",
  "login.user": "User",
  "login.password": "Password",
  "login.submit": "Log in",
  logout: "Log out",
  "nav.fleet": "Overview",
  "nav.live": "Live",
  "nav.playback": "Playback",
  "nav.share": "Sharing",
  "nav.audit": "Audit",
  "tree.title": "Cameras",
  "tree.search": "Search by name or GB/T 28181 code",
  "tree.city": "Whole city",
  "tree.none": "(none)",
  "tree.mobile": "Mobile terminals",
  "tree.results": "{n} found",
  "tree.more": "only the first {n} shown: narrow the search",
  "tree.loading": "loading…",
  "tree.empty": "no cameras",
  "count.online": "online {online}/{total}",
  "grid.layout": "Layout",
  "grid.drop": "drag a camera here",
  "grid.close": "Close",
  "grid.unavailable": "live-player.js not loaded: live view unavailable",
  "fleet.devices": "Devices",
  "fleet.cameras": "Cameras",
  "fleet.alerts": "Alerts",
  "fleet.online": "online",
  "fleet.offline": "offline",
  "fleet.unknown": "unknown",
  "fleet.live": "live updates",
  "fleet.stale": "connection lost, reconnecting…",
  "fleet.device": "Device",
  "fleet.county": "County / site",
  "fleet.state": "State",
  "fleet.camerasUp": "Cameras up",
  "fleet.lastSeen": "Last seen",
  "fleet.noAlerts": "no alerts",
  "fleet.raised": "raised {at}, for {dur}",
  "fleet.ack": "Acknowledge",
  "fleet.acked": "acknowledged",
  "fleet.detail": "Device detail",
  "fleet.noFleet": "this controller runs no fleet (MQTT) view",
  "fleet.more": "{n} of {total} shown (offline first); find the others in the tree",
  "fleet.gb": "GB/T 28181",
  "fleet.channels": "{n} channels",
  "fleet.gbRegistered": "registered",
  "fleet.gbExpires": "registration expires",
  "fleet.gbKeepalive": "last keepalive",
  "fleet.gbContact": "address",
  "fleet.gbReplica": "controller replica",
  "fleet.gbSilent": "not answering since",
  "fleet.channelsOff": "{n} offline",
  "fleet.ch.catalog_off": "channel offline (the device's catalog reports OFF)",
  "fleet.ch.device_offline": "offline (device offline)",
  "fleet.chStatus": "catalog status {s} ({at})",
  "cam.camera": "Camera",
  "cam.name": "Name",
  "cam.code": "GB/T 28181 code",
  "cam.area": "Area",
  "cam.class": "Class",
  "cam.device": "Device",
  "cam.state": "State",
  "cam.detail": "Detail",
  "cam.reason": "Reason",
  "cam.media": "Media",
  "play.title": "Playback",
  "play.camera": "Camera",
  "play.from": "From",
  "play.to": "To",
  "play.range": "Play range",
  "play.live": "Live",
  "play.zone": "Beijing time",
  "play.date": "Date",
  "play.speed": "Speed",
  "play.snapshot": "Snapshot",
  "play.fetch": "Fetch from device",
  "play.deadline": "Deadline (empty: within the hour)",
  "play.export": "Export evidence",
  "play.case": "Case id",
  "play.asking": "asking for a grant…",
  "play.playing": "playing {camera} (grant {grant}{how})",
  "play.h264": ", H.264 for this browser",
  "play.failed": "playback failed: {why}",
  "play.problem": "playback problem: {why}",
  "play.cannotStart": "cannot start: {why}",
  "play.noHls": "hls.js is not installed (run make web): playback is unavailable",
  "play.noMpegts": "mpegts.js is not installed (run make web): live view is unavailable",
  "play.others": "everything else works.",
  "play.seeked": "at {at}",
  "play.live.started": "live {camera}",
  "play.unmute": "Turn sound on",
  "tl.cloud": "in cloud",
  "tl.device": "on device only",
  "tl.gap": "gap",
  "tl.evicted": "evicted",
  "tl.events": "events",
  "job.title": "Footage requests",
  "job.progress": "{state} {percent}% ({done}/{total} segments)",
  "job.requested": "footage request {job} sent",
  "export.done": "evidence exported: {file}",
  "share.title": "Sharing",
  "share.mine": "Shared by me",
  "share.withMe": "Shared with me",
  "share.org": "Organisation",
  "share.user": "User (optional)",
  "share.ops": "Operations",
  "share.hours": "Lifetime (hours)",
  "share.window": "Footage window",
  "share.submit": "Share",
  "share.revoke": "Revoke",
  "share.revoked": "revoked",
  "share.link": "Copy share link",
  "share.copied": "link copied",
  "share.request": "Request access",
  "share.reason": "Reason",
  "share.approve": "Approve",
  "share.refuse": "Refuse",
  "share.delegate": "Delegate",
  "audit.title": "Audit",
  "audit.user": "User",
  "audit.camera": "Camera",
  "audit.case": "Case",
  "audit.search": "Search",
  "audit.time": "Time",
  "audit.action": "Action",
  "audit.outcome": "Outcome",
  "audit.chain": "Audit chain",
  "op.live": "live",
  "op.playback": "playback",
  "op.download": "download",
  "state.starting": "starting",
  "state.streaming": "online",
  "state.no_keyframe_yet": "waiting for a keyframe",
  "state.unsupported_codec": "unsupported codec",
  "state.auth_failed": "authentication failed",
  "state.unreachable": "unreachable",
  "state.stalled": "stalled",
  "state.disconnected": "disconnected",
  "state.file_error": "file error",
  "state.failed": "failed",
  "level.info": "info",
  "level.warning": "warning",
  "level.critical": "critical",
  "dur.s": "{n} s",
  "dur.m": "{n} min",
  "dur.h": "{n} h",
  "audio.none": "no audio",
  "audio.mono": "mono",
  "audio.stereo": "stereo",
};

// API refusals by reason code (controller/api/errors.py, controller/grants/errors.py).
const ERRORS_ZH = {
  unauthenticated: "登录已失效，请重新登录。",
  bad_credentials: "用户名或密码错误。",
  rate_limited: "尝试过于频繁，请稍后再试。",
  not_entitled: "本单位无权查看该摄像机。",
  role_not_allowed: "您的角色不允许此操作。",
  unknown_camera: "目录中没有该摄像机。",
  unknown_device: "没有该设备。",
  no_footage: "该时段没有录像。",
  not_found: "未找到。",
  revoked: "授权已被撤销，无法播放。",
  expired: "授权已过期。",
  not_yet_valid: "授权尚未生效。",
  outside_window: "所选时间不在授权时段内。",
  camera_out_of_scope: "授权不包括该摄像机。",
  operation_not_granted: "授权不包括此操作。",
  case_required: "超过 24 小时的时段需要填写案件编号。",
  bad_request: "请求有误：{message}",
  oversize: "内容过大。",
  fleet_unavailable: "本控制器未运行设备监控。",
  catalog_unavailable: "数据库暂不可用，请稍后再试。",
  storage_unavailable: "存储暂不可用，请稍后再试。",
  audit_unavailable: "审计服务暂不可用，操作未执行。",
  export_failed: "证据导出失败。",
  uses_exhausted: "下载次数已用完。",
  widened: "转授权不能超出原授权范围。",
  not_delegable: "该授权不能转授。",
  wrong_holder: "该授权不属于您。",
  network: "无法连接控制中心。",
  http_404: "录像不存在或已清除。",
  http_403: "无权访问。",
  http_401: "登录已失效，请重新登录。",
  http_5xx: "控制中心出错，请稍后再试。",
  media: "浏览器无法解码该视频。",
  unknown: "操作失败（{reason}）。",
};
const ERRORS_EN = {
  unauthenticated: "Your session has ended: log in again.",
  bad_credentials: "Wrong user name or password.",
  rate_limited: "Too many attempts: try again later.",
  not_entitled: "Your organisation may not see this camera.",
  role_not_allowed: "Your role does not allow this.",
  unknown_camera: "No such camera in the directory.",
  unknown_device: "No such device.",
  no_footage: "No footage in that time range.",
  not_found: "Not found.",
  revoked: "The grant was revoked: playback refused.",
  expired: "The grant has expired.",
  not_yet_valid: "The grant is not valid yet.",
  outside_window: "That time is outside the grant's window.",
  camera_out_of_scope: "The grant does not cover this camera.",
  operation_not_granted: "The grant does not allow this operation.",
  case_required: "A window over 24 h needs a case id.",
  bad_request: "Bad request: {message}",
  oversize: "Too large.",
  fleet_unavailable: "This controller runs no fleet view.",
  catalog_unavailable: "The database is unavailable: try again later.",
  storage_unavailable: "The store is unavailable: try again later.",
  audit_unavailable: "The audit log is unavailable: nothing was done.",
  export_failed: "The evidence export failed.",
  uses_exhausted: "No downloads left on this grant.",
  widened: "A delegation cannot be wider than its grant.",
  not_delegable: "This grant cannot be delegated.",
  wrong_holder: "This grant is not yours.",
  network: "Cannot reach the control centre.",
  http_404: "The footage does not exist or was removed.",
  http_403: "Access refused.",
  http_401: "Your session has ended: log in again.",
  http_5xx: "The control centre failed: try again later.",
  media: "The browser cannot decode this video.",
  unknown: "Failed ({reason}).",
};

const DICTS = { "zh-CN": [ZH, ERRORS_ZH], en: [EN, ERRORS_EN] };
let lang = "zh-CN";

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = DICTS[next] ? next : "zh-CN";
  document.documentElement.lang = lang;
  try {
    localStorage.setItem("vigil-lang", lang);
  } catch {
    /* private mode: the choice lasts this page */
  }
}

export function savedLang() {
  try {
    return localStorage.getItem("vigil-lang") || "zh-CN";
  } catch {
    return "zh-CN";
  }
}

function fill(text, vars) {
  return text.replace(/\{(\w+)\}/g, (_m, k) => (vars && k in vars ? String(vars[k]) : `{${k}}`));
}

// A module's own words (requests.js, users.js, charts.js), so this file stays the common ones.
export function addWords(zh, en) {
  Object.assign(ZH, zh);
  Object.assign(EN, en);
}

export function t(key, vars) {
  const dict = DICTS[lang][0];
  return fill(dict[key] ?? ZH[key] ?? key, vars);
}

// A sentence for an API refusal (reason code, message) or an HTTP status.
export function errorText(reason, message, status) {
  const dict = DICTS[lang][1];
  if (reason && dict[reason]) return fill(dict[reason], { message: message || "", reason });
  if (status === 401 || status === 403 || status === 404) return dict[`http_${status}`];
  if (status >= 500) return dict.http_5xx;
  if (!status && !reason) return dict.network;
  return fill(dict.unknown, { reason: reason || status });
}

// Every element with data-i18n="key" gets its text; data-i18n-ph its placeholder.
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-ph]")) el.placeholder = t(el.dataset.i18nPh);
  document.title = t("title");
}

const FORMATS = {};
function formatter(kind) {
  const key = `${lang}:${kind}`;
  if (!FORMATS[key]) {
    const opts = { timeZone: "Asia/Shanghai", hour12: false };
    if (kind !== "time") Object.assign(opts, { year: "numeric", month: "2-digit", day: "2-digit" });
    if (kind !== "date") Object.assign(opts, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    FORMATS[key] = new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "zh-CN", opts);
  }
  return FORMATS[key];
}

// Microseconds since the epoch as Beijing date and time ("2026/12/04 08:15:02").
export function shanghai(us) {
  return us ? formatter("datetime").format(new Date(us / 1000)) : "-";
}

export function shanghaiTime(us) {
  return us ? formatter("time").format(new Date(us / 1000)) : "-";
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("dur.s", { n: s });
  if (s < 3600) return t("dur.m", { n: Math.floor(s / 60) });
  return t("dur.h", { n: (s / 3600).toFixed(1) });
}

// Beijing midnight of a "YYYY-MM-DD" day, in microseconds (UTC+8, no daylight saving).
export function dayStartUs(day) {
  return Date.parse(`${day}T00:00:00+08:00`) * 1000;
}

export function todayShanghai(nowMs = Date.now()) {
  return new Date(nowMs + 8 * 3600e3).toISOString().slice(0, 10);
}
