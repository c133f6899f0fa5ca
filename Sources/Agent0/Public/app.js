/* agent0 — the browser side of the chat app. Plain JS, no build step.
 *
 * Rules this file keeps (the server sends a strict CSP):
 *  - no inline script or style, no style attributes: look is done with classes and `hidden`;
 *  - text from users, tools and servers goes in with textContent; only the assistant's Markdown
 *    becomes HTML, and only after DOMPurify has sanitized what marked produced;
 *  - every POST carries X-CSRF-Token (from /auth/status).
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------------------------------------
  // State

  const state = {
    csrf: null,
    user: null,
    busy: false,          // a chat turn or a resume is in flight
    panelOpen: false,
    panelWideOpen: true,  // the user's choice on wide screens
    panelTimer: null,
    panelLoading: false,
    panelDoc: null,
    consents: [],         // consent cards in the order they arrived: {id, consent, card, status, popup, timer}
  };

  const POPUP_NAME = 'switchboard-consent';
  const POPUP_FEATURES = 'popup,width=520,height=680';
  const POLL_MS = 400;
  const PANEL_REFRESH_MS = 4000;
  const wide = window.matchMedia('(min-width: 1100px)');

  const $ = (id) => document.getElementById(id);
  const ui = {};

  // ---------------------------------------------------------------------------------------------
  // Small DOM helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function isObject(x) { return x !== null && typeof x === 'object' && !Array.isArray(x); }
  function asArray(x) { return Array.isArray(x) ? x : []; }
  function str(x) { return typeof x === 'string' ? x : (x === undefined || x === null ? '' : String(x)); }

  /** Pretty JSON for display in a <pre> (never HTML). Strings that hold JSON are pretty-printed too. */
  function prettyJSON(value) {
    if (value === undefined) return '(none)';
    if (typeof value === 'string') {
      const t = value.trim();
      if (t.startsWith('{') || t.startsWith('[')) {
        try { return JSON.stringify(JSON.parse(t), null, 2); } catch (_) { /* not JSON: as is */ }
      }
      return value;
    }
    try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
  }

  function humanize(code) {
    const s = str(code).trim();
    if (!s) return '';
    const words = /\s/.test(s) ? s : s.replace(/[_-]+/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  const REASONS = {
    no_traffic_yet: 'No traffic yet',
    no_activity: 'No activity yet',
    no_recent_activity: 'No recent activity',
    consent_required: 'Waiting for a user to grant access',
    interaction_required: 'Waiting for a user to grant access',
    credential_expired: 'Credential expired; renewed on next use',
    credential_failed: 'Could not get a credential',
    upstream_unreachable: 'Upstream unreachable',
    upstream_timeout: 'Upstream timed out',
    upstream_status: 'Upstream answered with an error',
    upstream_rejected_credential: 'Upstream rejected the credential',
    idp_unavailable: 'Identity provider unavailable',
    invalid_user_token: 'User token was rejected',
    connection_disabled: 'Disabled',
    internal_error: 'Internal error in the gateway',
    'disabled in config': 'Disabled in the configuration',
  };
  function reasonText(code) { return REASONS[code] || humanize(code); }

  const STRATEGIES = { idjag: 'ID-JAG', 'oauth-sts': 'OAuth STS', none: 'none' };
  function strategyLabel(s) {
    if (!s) return 'none';
    return STRATEGIES[s] || s;
  }

  const relFmt = (typeof Intl !== 'undefined' && Intl.RelativeTimeFormat)
    ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;
  function relTime(iso) {
    const t = Date.parse(iso);
    if (!Number.isFinite(t)) return '';
    const diff = (t - Date.now()) / 1000;
    const abs = Math.abs(diff);
    if (!relFmt) return new Date(t).toLocaleString();
    if (abs < 45) return diff < 0 ? 'just now' : 'in a few seconds';
    if (abs < 45 * 60) return relFmt.format(Math.round(diff / 60), 'minute');
    if (abs < 22 * 3600) return relFmt.format(Math.round(diff / 3600), 'hour');
    return relFmt.format(Math.round(diff / 86400), 'day');
  }
  function absTime(iso) {
    const t = Date.parse(iso);
    return Number.isFinite(t) ? new Date(t).toLocaleString() : '';
  }
  /** A <time> whose relative text is refreshed with the panel. */
  function timeEl(iso, prefix) {
    const t = el('time', 'rel-time');
    t.dateTime = iso;
    t.dataset.prefix = prefix || '';
    t.title = absTime(iso);
    t.textContent = (prefix || '') + relTime(iso);
    return t;
  }
  function refreshTimes(root) {
    root.querySelectorAll('time.rel-time').forEach((t) => {
      t.textContent = (t.dataset.prefix || '') + relTime(t.dateTime);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Markdown, safely

  let markdownReady = false;
  function setupMarkdown() {
    if (typeof window.marked === 'undefined' || typeof window.DOMPurify === 'undefined') return;
    try {
      const escapeHTML = (s) => str(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
      window.marked.setOptions({ gfm: true, breaks: true, headerIds: false, mangle: false });
      // Raw HTML in the model's text is shown as text (a few bare formatting tags excepted), so
      // DOMPurify only ever parses what marked itself produced. DOMPurify still has the last word.
      const SIMPLE_TAG = /^<\/?(br|b|i|em|strong|u|s|del|sub|sup|kbd|mark)\s*\/?>$/i;
      window.marked.use({
        renderer: {
          html(html) {
            const raw = str(html);
            return SIMPLE_TAG.test(raw.trim()) ? raw.trim() : escapeHTML(raw);
          },
          // Images are not shown (img-src and the sanitizer forbid them): show a link instead.
          image(href, title, text) {
            if (!href) return escapeHTML(text);
            return '<a href="' + escapeHTML(href) + '">' + (text || escapeHTML(href)) + '</a>';
          },
        },
      });
      window.DOMPurify.addHook('afterSanitizeAttributes', (node) => {
        if (node.tagName === 'A') {
          if (node.hasAttribute('href')) {
            node.setAttribute('target', '_blank');
            node.setAttribute('rel', 'noopener noreferrer');
          }
        }
      });
      markdownReady = true;
    } catch (e) {
      markdownReady = false;
    }
  }

  const PURIFY_CONFIG = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ['style', 'img', 'picture', 'source', 'iframe', 'frame', 'frameset', 'object', 'embed',
      'form', 'input', 'button', 'textarea', 'select', 'option', 'video', 'audio', 'track', 'canvas',
      'svg', 'math', 'link', 'meta', 'base', 'template', 'dialog', 'script', 'noscript'],
    FORBID_ATTR: ['style', 'id', 'name', 'srcset', 'action', 'formaction', 'background', 'poster', 'ping'],
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };

  /** Fills `target` with the Markdown `text` rendered as sanitized HTML (or plain text when the libraries are missing). */
  function setMarkdown(target, text) {
    target.replaceChildren();
    const source = str(text);
    if (!source.trim()) return;
    if (!markdownReady) { target.classList.add('plain'); target.textContent = source; return; }
    try {
      const html = window.marked.parse(source);
      const fragment = window.DOMPurify.sanitize(html, PURIFY_CONFIG);
      target.appendChild(fragment);
    } catch (e) {
      target.classList.add('plain');
      target.textContent = source;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // API

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
      this.handled = false;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') {
      if (state.csrf) headers['X-CSRF-Token'] = state.csrf;
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError('network_error', 'Could not reach agent0. Check your connection and try again.', 0);
    }
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) {
      const code = (isObject(data) && data.error) || 'not_signed_in';
      const err = new ApiError(code, (isObject(data) && data.message) || 'You are not signed in.', 401);
      err.handled = true;
      showSignIn(code === 'session_expired' ? 'Your session ended, sign in again.' : (state.user ? 'You were signed out, sign in again.' : ''));
      throw err;
    }
    if (!response.ok) {
      const code = (isObject(data) && data.error) || ('http_' + response.status);
      const message = (isObject(data) && typeof data.message === 'string' && data.message) ||
        ('The request failed (HTTP ' + response.status + ').');
      throw new ApiError(code, message, response.status);
    }
    return isObject(data) ? data : {};
  }

  // ---------------------------------------------------------------------------------------------
  // Screens

  function showBoot(text, canRetry) {
    ui.boot.hidden = false;
    ui.bootText.textContent = text;
    ui.bootRetry.hidden = !canRetry;
  }

  function showSignIn(note) {
    stopPanelRefresh();
    stopAllConsentPolls();
    state.user = null;
    state.csrf = null;
    ui.boot.hidden = true;
    ui.app.hidden = true;
    ui.signin.hidden = false;
    ui.signinNote.textContent = note || '';
    ui.signinNote.hidden = !note;
    document.title = 'Sign in · agent0';
  }

  function initials(name) {
    const parts = str(name).trim().split(/[\s@._-]+/).filter(Boolean);
    if (!parts.length) return '?';
    return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
  }

  async function showApp(status) {
    state.user = status;
    state.csrf = typeof status.csrf_token === 'string' ? status.csrf_token : null;
    const name = str(status.name) || str(status.email) || str(status.subject) || 'you';
    ui.userName.textContent = name;
    ui.userName.title = str(status.email) || name;
    ui.userAvatar.textContent = initials(name);
    const first = str(status.name).trim().split(/\s+/)[0];
    ui.emptyTitle.textContent = first ? 'Hi ' + first + ', how can I help?' : 'How can I help?';
    ui.boot.hidden = true;
    ui.signin.hidden = true;
    ui.app.hidden = false;
    document.title = 'agent0';
    setPanelOpen(wide.matches ? state.panelWideOpen : false, { focus: false });
    await loadHistory();
    ui.input.focus();
  }

  async function boot() {
    showBoot('Loading agent0…', false);
    let status;
    try {
      status = await api('GET', '/auth/status');
    } catch (e) {
      if (e.handled) return;
      showBoot(e.message || 'agent0 is not reachable right now.', true);
      return;
    }
    if (status.authenticated === true) {
      await showApp(status);
    } else {
      showSignIn('');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Chat rendering

  function scrollToBottom() {
    requestAnimationFrame(() => { ui.scroller.scrollTop = ui.scroller.scrollHeight; });
  }

  function updateEmpty() {
    ui.empty.hidden = ui.messages.childElementCount > 0;
  }

  function renderUser(text) {
    const msg = el('div', 'msg user');
    const bubble = el('div', 'msg-text', str(text));
    msg.appendChild(bubble);
    ui.messages.appendChild(msg);
    updateEmpty();
    return msg;
  }

  function renderError(message) {
    const msg = el('div', 'msg error');
    msg.setAttribute('role', 'alert');
    const icon = el('span', 'error-icon', '!');
    icon.setAttribute('aria-hidden', 'true');
    msg.append(icon, el('div', 'msg-text', str(message) || 'Something went wrong.'));
    ui.messages.appendChild(msg);
    updateEmpty();
    scrollToBottom();
    return msg;
  }

  function renderToolChip(call) {
    const c = isObject(call) ? call : {};
    const connection = str(c.connection);
    const tool = str(c.tool) || str(c.name);
    const failed = c.is_error === true;

    const chip = el('details', 'tool-chip' + (failed ? ' error' : ''));
    chip.dataset.connection = connection;
    chip.dataset.tool = tool;

    const summary = el('summary', 'tool-summary');
    const mark = el('span', 'tool-mark ' + (failed ? 'tool-mark-error' : 'tool-mark-ok'), failed ? '✕' : '✓');
    mark.setAttribute('role', 'img');
    mark.setAttribute('aria-label', failed ? 'failed' : 'succeeded');
    summary.appendChild(mark);
    const line = el('span', 'tool-line');
    const parts = [];
    if (connection) parts.push(el('span', 'tool-conn', connection));
    parts.push(el('span', 'tool-name', tool || 'tool'));
    if (typeof c.duration_ms === 'number' && Number.isFinite(c.duration_ms)) {
      parts.push(el('span', 'tool-duration', Math.round(c.duration_ms) + ' ms'));
    }
    parts.forEach((p, i) => {
      if (i > 0) {
        const sep = el('span', 'tool-sep', '·');
        sep.setAttribute('aria-hidden', 'true');
        line.appendChild(sep);
      }
      line.appendChild(p);
    });
    summary.appendChild(line);
    if (isObject(c.step_up)) {
      const scopes = asArray(c.step_up.scopes).map(str).filter(Boolean);
      const badge = el('span', 'tool-stepup', ('access widened to ' + scopes.join(', ')).trim());
      badge.title = 'The gateway widened your access for this call';
      summary.appendChild(badge);
    }
    const chevron = el('span', 'tool-chevron');
    chevron.setAttribute('aria-hidden', 'true');
    summary.appendChild(chevron);
    chip.appendChild(summary);

    const body = el('div', 'tool-body');
    body.appendChild(el('div', 'tool-label', 'Arguments'));
    body.appendChild(el('pre', 'tool-args', prettyJSON(c.arguments === undefined ? {} : c.arguments)));
    body.appendChild(el('div', 'tool-label', failed ? 'Error' : 'Result'));
    body.appendChild(el('pre', 'tool-result', prettyJSON(c.result)));
    chip.appendChild(body);
    return chip;
  }

  /**
   * An assistant message: tool chips, then the Markdown text, then consent cards.
   * `actionable`: whether its consent cards may still be acted on (false for old history).
   */
  function renderAssistant(turn, actionable) {
    const t = isObject(turn) ? turn : {};
    const msg = el('div', 'msg assistant');
    const avatar = el('span', 'avatar', 'a0');
    avatar.setAttribute('aria-hidden', 'true');
    const body = el('div', 'msg-body');

    const calls = asArray(t.tool_calls);
    if (calls.length) {
      const chips = el('div', 'tool-chips');
      calls.forEach((call) => chips.appendChild(renderToolChip(call)));
      body.appendChild(chips);
    }

    const text = el('div', 'msg-text markdown');
    setMarkdown(text, t.message !== undefined ? t.message : t.text);
    body.appendChild(text);

    const consents = asArray(t.consents).filter(isObject);
    if (consents.length) {
      const box = el('div', 'consents');
      consents.forEach((c) => box.appendChild(renderConsentCard(c, actionable)));
      body.appendChild(box);
    }

    msg.append(avatar, body);
    ui.messages.appendChild(msg);
    updateEmpty();
    return msg;
  }

  // ---------------------------------------------------------------------------------------------
  // Consent cards

  function renderConsentCard(consent, actionable) {
    const id = str(consent.id);
    const title = str(consent.title) || str(consent.connection) || 'a service';
    const waiting = consent.waiting === true;
    const uri = str(consent.interaction_uri);

    const card = el('div', 'consent-card');
    card.dataset.connection = str(consent.connection);
    card.dataset.consentId = id;
    card.dataset.waiting = waiting ? 'true' : 'false';

    const icon = el('span', 'consent-icon');
    icon.setAttribute('aria-hidden', 'true');
    const main = el('div', 'consent-main');
    main.appendChild(el('div', 'consent-title', 'Connect ' + title));
    main.appendChild(el('p', 'consent-text', waiting
      ? 'To go on, agent0 needs your permission to use ' + title + ' on your behalf. A window opens where you grant access; the conversation continues when you close it.'
      : title + ' needs your permission before agent0 can see its tools. Grant access in the window that opens; its tools join from your next message.'));

    const actions = el('div', 'consent-actions');
    const open = el('button', 'btn btn-primary consent-open', 'Connect ' + title);
    open.type = 'button';
    actions.appendChild(open);
    const link = el('a', 'consent-link', 'Open the sign-in page');
    link.target = '_blank';
    link.rel = 'noopener';
    link.hidden = true;
    if (uri) link.href = uri;
    actions.appendChild(link);
    const retry = el('button', 'btn btn-secondary consent-retry', waiting ? 'I granted access, continue' : 'I granted access');
    retry.type = 'button';
    retry.hidden = true;
    actions.appendChild(retry);
    main.appendChild(actions);

    const status = el('p', 'consent-status');
    status.setAttribute('aria-live', 'polite');
    main.appendChild(status);

    card.append(icon, main);

    const entry = { id, consent, card, open, link, retry, status, waiting, uri, title, state: 'pending', popup: null, timer: null };
    open.addEventListener('click', () => openConsent(entry));
    retry.addEventListener('click', () => consentFinished(entry));

    if (!actionable) {
      finishCard(entry, 'past', 'Requested earlier in this conversation.');
    } else if (!uri) {
      finishCard(entry, 'failed', 'This request cannot be opened: no address was given.');
    }
    state.consents.push(entry);
    return card;
  }

  function isOpenEntry(e) { return e.state !== 'done' && e.state !== 'skipped' && e.state !== 'failed' && e.state !== 'past'; }

  /**
   * Only the first unresolved card that holds a tool call can be acted on (one resume at a
   * time); the others wait their turn. A card that holds no call (a server that needs consent
   * before it can list its tools) never blocks the queue and stays usable.
   */
  function updateConsentQueue() {
    let first = true;
    state.consents.forEach((e) => {
      if (!isOpenEntry(e)) return;
      if (!e.waiting || first) {
        if (e.waiting) first = false;
        e.card.classList.remove('queued');
        if (e.state === 'pending') {
          e.open.disabled = state.busy;
          e.open.textContent = 'Connect ' + e.title;
          if (!e.status.dataset.kept) e.status.textContent = state.busy ? 'Available when agent0 has answered.' : '';
        } else if (e.state === 'queued') {
          e.state = 'pending';
          e.open.disabled = state.busy;
          e.open.textContent = 'Connect ' + e.title;
          e.status.textContent = '';
        }
      } else {
        e.state = 'queued';
        e.card.classList.add('queued');
        e.open.disabled = true;
        e.open.textContent = 'Waiting…';
        e.status.textContent = 'Waiting: one connection at a time, after the one above.';
      }
      e.card.dataset.state = e.state;
    });
  }

  function finishCard(entry, how, message) {
    stopPoll(entry);
    entry.state = how;
    entry.card.dataset.state = how;
    entry.card.classList.remove('queued', 'active');
    entry.card.classList.add('resolved', how);
    entry.open.disabled = true;
    entry.retry.disabled = true;
    entry.retry.hidden = true;
    entry.link.hidden = true;
    if (how === 'done') entry.open.textContent = 'Connected';
    if (how === 'skipped') entry.open.textContent = 'Not connected';
    if (how === 'failed') entry.open.textContent = 'Not connected';
    if (how === 'past') entry.open.hidden = true;
    if (message) entry.status.textContent = message;
  }

  function stopPoll(entry) {
    if (entry.timer) { clearInterval(entry.timer); entry.timer = null; }
  }
  function stopAllConsentPolls() { state.consents.forEach(stopPoll); }

  /** Opens the consent popup (keeps the reference: no noopener, to watch `.closed`). */
  function openPopup(uri) {
    let popup = null;
    try { popup = window.open(uri, POPUP_NAME, POPUP_FEATURES); } catch (_) { popup = null; }
    return popup;
  }

  function openConsent(entry) {
    if (!isOpenEntry(entry) || entry.state === 'open' || state.busy) return;
    const popup = openPopup(entry.uri);
    if (!popup) {
      entry.state = 'blocked';
      entry.card.dataset.state = 'blocked';
      entry.link.hidden = false;
      entry.retry.hidden = false;
      entry.retry.disabled = false;
      entry.open.textContent = 'Try the pop-up again';
      entry.status.dataset.kept = '1';
      entry.status.textContent = 'Your browser blocked the pop-up. Open the sign-in page with the link, grant access, then come back and press “' + entry.retry.textContent + '”.';
      return;
    }
    entry.popup = popup;
    entry.state = 'open';
    entry.card.dataset.state = 'open';
    entry.card.classList.add('active');
    entry.open.disabled = true;
    entry.open.textContent = 'Waiting for the window…';
    entry.link.hidden = true;
    entry.retry.hidden = true;
    entry.status.dataset.kept = '1';
    entry.status.textContent = 'Finish in the window that opened, then close it.';
    stopPoll(entry);
    entry.timer = setInterval(() => {
      let closed = true;
      try { closed = popup.closed; } catch (_) { closed = true; }
      if (closed) {
        stopPoll(entry);
        consentFinished(entry);
      }
    }, POLL_MS);
  }

  async function consentFinished(entry) {
    if (!isOpenEntry(entry) || entry.state === 'resuming') return;
    stopPoll(entry);
    entry.popup = null;
    if (!entry.waiting) {
      finishCard(entry, 'done', 'Connected — its tools join from your next message.');
      updateConsentQueue();
      refreshPanel();
      return;
    }
    entry.state = 'resuming';
    entry.card.dataset.state = 'resuming';
    entry.open.disabled = true;
    entry.retry.disabled = true;
    entry.open.textContent = 'Continuing…';
    entry.status.textContent = 'Continuing the conversation…';
    await runExclusive(async () => {
      try {
        const turn = await api('POST', '/api/chat/resume', { consent_id: entry.id });
        finishCard(entry, 'done', 'Connected — the conversation continues below.');
        renderAssistant(turn, true);
      } catch (e) {
        if (e.handled) return;
        finishCard(entry, 'failed', 'Could not continue: ' + (e.message || 'unknown error'));
        renderError(e.message);
      }
    }, 'Continuing after your consent…');
    updateConsentQueue();
  }

  /** A new message answers any waiting tool call with "consent was not given": those cards are settled. */
  function skipWaitingConsents() {
    state.consents.forEach((e) => {
      if (isOpenEntry(e) && e.waiting) {
        finishCard(e, 'skipped', 'Skipped: you sent a new message before granting access.');
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Chat flow

  function setBusy(busy, label) {
    state.busy = busy;
    ui.typing.hidden = !busy;
    ui.typingText.textContent = busy ? (label || 'agent0 is working…') : '';
    ui.send.disabled = busy || !ui.input.value.trim();
    ui.form.setAttribute('aria-busy', busy ? 'true' : 'false');
    updateConsentQueue();
    if (busy) scrollToBottom();
  }

  let chain = Promise.resolve();
  /** Chat POSTs run one at a time, with the typing indicator shown. */
  function runExclusive(fn, label) {
    const run = chain.then(async () => {
      setBusy(true, label);
      try { await fn(); } finally {
        setBusy(false);
        scrollToBottom();
        if (state.panelOpen) refreshPanel();
      }
    });
    chain = run.catch(() => {});
    return run;
  }

  async function sendMessage() {
    const text = ui.input.value;
    if (!text.trim() || state.busy || !state.user) return;
    skipWaitingConsents();
    renderUser(text);
    ui.input.value = '';
    autosize();
    scrollToBottom();
    await runExclusive(async () => {
      try {
        const turn = await api('POST', '/api/chat', { message: text });
        renderAssistant(turn, true);
      } catch (e) {
        if (e.handled) return;
        renderError(e.message);
        if (!ui.input.value) { ui.input.value = text; autosize(); }
      }
    }, 'agent0 is working…');
    if (state.user) ui.input.focus();
  }

  async function loadHistory() {
    ui.messages.replaceChildren();
    state.consents.forEach(stopPoll);
    state.consents = [];
    let data;
    try {
      data = await api('GET', '/api/history');
    } catch (e) {
      if (e.handled) return;
      updateEmpty();
      renderError('Could not load your conversation: ' + e.message);
      return;
    }
    const entries = asArray(data.entries).filter(isObject);
    entries.forEach((entry, i) => {
      if (entry.role === 'user') {
        renderUser(entry.text);
      } else if (entry.role === 'assistant') {
        // Only the latest answer's consent requests can still be acted on.
        renderAssistant(entry, i === entries.length - 1);
      }
    });
    updateEmpty();
    updateConsentQueue();
    scrollToBottom();
  }

  function autosize() {
    const lines = ui.input.value.split('\n').length;
    ui.input.rows = Math.max(1, Math.min(8, lines));
    ui.send.disabled = state.busy || !ui.input.value.trim();
  }

  async function signOut() {
    ui.signOut.disabled = true;
    try {
      const data = await api('POST', '/logout');
      location.assign(typeof data.redirect === 'string' && data.redirect ? data.redirect : '/');
    } catch (e) {
      ui.signOut.disabled = false;
      if (e.handled) return;
      renderError('Could not sign out: ' + e.message);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Managed connections panel

  const SECTIONS = [
    { kind: 'authorization_server', title: 'Authorization Server' },
    { kind: 'application', title: 'Application' },
    { kind: 'mcp_server', title: 'MCP Server' },
  ];

  function isNarrowOverlay() { return !wide.matches; }

  function setPanelOpen(open, opts) {
    const options = opts || {};
    state.panelOpen = open;
    if (wide.matches && options.remember !== false) state.panelWideOpen = open;
    ui.panel.hidden = !open;
    ui.app.classList.toggle('panel-open', open);
    ui.toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    const overlay = open && isNarrowOverlay();
    ui.backdrop.hidden = !overlay;
    ui.app.classList.toggle('panel-overlay', overlay);
    // While the slide-over covers the chat, the rest of the page is inert.
    ui.chat.inert = overlay;
    ui.topbar.inert = overlay;
    if (open) {
      startPanelRefresh();
      if (options.focus) ui.panel.focus();
    } else {
      stopPanelRefresh();
      if (options.focus) ui.toggle.focus();
    }
  }

  function startPanelRefresh() {
    stopPanelRefresh();
    refreshPanel();
    state.panelTimer = setInterval(() => {
      if (!document.hidden) refreshPanel();
    }, PANEL_REFRESH_MS);
  }
  function stopPanelRefresh() {
    if (state.panelTimer) { clearInterval(state.panelTimer); state.panelTimer = null; }
  }

  async function refreshPanel() {
    if (!state.user || state.panelLoading) return;
    state.panelLoading = true;
    try {
      const doc = await api('GET', '/api/connections');
      state.panelDoc = doc;
      renderPanel(doc, null);
    } catch (e) {
      if (!e.handled) renderPanel(state.panelDoc, e.message);
    } finally {
      state.panelLoading = false;
    }
  }

  function idButton(label, value) {
    const b = el('button', 'conn-id');
    b.type = 'button';
    b.dataset.value = value;
    b.dataset.focusKey = 'id:' + label;
    b.setAttribute('aria-label', 'Copy ' + label + ': ' + value);
    b.title = 'Copy ' + label;
    const l = el('span', 'conn-id-label', label);
    const v = el('span', 'conn-id-value', value);
    b.append(l, v);
    b.addEventListener('click', () => copyValue(b, l, label));
    return b;
  }

  async function copyValue(button, labelEl, label) {
    const value = button.dataset.value || '';
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(value);
        ok = true;
      }
    } catch (_) { ok = false; }
    if (!ok) {
      // Fallback for pages served over plain http on a non-local host.
      try {
        const ta = el('textarea', 'copy-buffer');
        ta.value = value;
        ta.setAttribute('readonly', '');
        document.body.appendChild(ta);
        ta.select();
        ok = document.execCommand('copy');
        ta.remove();
      } catch (_) { ok = false; }
    }
    labelEl.textContent = ok ? 'copied' : 'copy failed';
    button.classList.add(ok ? 'copied' : 'copy-failed');
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(() => {
      labelEl.textContent = label;
      button.classList.remove('copied', 'copy-failed');
    }, 1500);
  }

  const USER_STATES = {
    live: 'Connected',
    expired: 'Your access expired; it renews when next used',
    consent_required: 'Needs your permission',
    error: 'Error',
  };

  function renderUserState(u) {
    const box = el('div', 'conn-user-state');
    const st = str(u.state);
    box.dataset.state = st;
    const label = el('span', 'conn-user-label', 'You');
    box.appendChild(label);
    let text = USER_STATES[st] || humanize(st) || 'Unknown';
    if (st === 'error' && u.error) text = 'Error: ' + reasonText(u.error);
    const value = el('span', 'conn-user-value', text);
    box.appendChild(value);
    if (st === 'live' && u.credential_expires_at) {
      const exp = Date.parse(u.credential_expires_at);
      box.appendChild(timeEl(u.credential_expires_at, Number.isFinite(exp) && exp < Date.now() ? 'expired ' : 'access expires '));
    } else if (u.at && st !== 'consent_required') {
      box.appendChild(timeEl(u.at, ''));
    }
    const uri = str(u.interaction_uri);
    if (st === 'consent_required' && uri) {
      const b = el('button', 'btn btn-primary btn-sm conn-consent', 'Grant access');
      b.type = 'button';
      b.dataset.focusKey = 'consent';
      const link = el('a', 'conn-consent-link', 'Open the sign-in page');
      link.href = uri;
      link.target = '_blank';
      link.rel = 'noopener';
      link.hidden = true;
      b.addEventListener('click', () => {
        const popup = openPopup(uri);
        if (!popup) {
          link.hidden = false;
          value.textContent = 'Pop-up blocked: use the link, then come back.';
          return;
        }
        b.disabled = true;
        b.textContent = 'Waiting for the window…';
        const timer = setInterval(() => {
          let closed = true;
          try { closed = popup.closed; } catch (_) { closed = true; }
          if (closed) {
            clearInterval(timer);
            b.disabled = false;
            b.textContent = 'Grant access';
            refreshPanel();
          }
        }, POLL_MS);
      });
      box.append(b, link);
    }
    return box;
  }

  function renderConnCard(c, u) {
    const card = el('article', 'conn-card');
    const name = str(c.name);
    card.dataset.name = name;
    card.dataset.kind = str(c.kind);
    const status = str(c.status).toUpperCase() || 'IDLE';
    card.dataset.status = status;

    const head = el('div', 'conn-head');
    const titles = el('div', 'conn-titles');
    titles.appendChild(el('h4', 'conn-title', str(c.title) || name));
    const meta = el('div', 'conn-meta');
    meta.appendChild(el('span', 'conn-name', name));
    const strat = el('span', 'conn-strategy', strategyLabel(c.strategy));
    strat.title = 'Credential strategy';
    meta.appendChild(strat);
    titles.appendChild(meta);
    head.appendChild(titles);
    const chip = el('span', 'conn-status', status);
    chip.dataset.status = status;
    head.appendChild(chip);
    card.appendChild(head);

    const line = el('div', 'conn-state-line');
    if (c.reason) line.appendChild(el('span', 'conn-reason', reasonText(c.reason)));
    if (c.last_success_at) line.appendChild(timeEl(c.last_success_at, 'last success '));
    const d = isObject(c.details) ? c.details : {};
    if (d.credential_expires_at) {
      const exp = Date.parse(d.credential_expires_at);
      line.appendChild(timeEl(d.credential_expires_at, Number.isFinite(exp) && exp < Date.now() ? 'credential expired ' : 'credential expires '));
    }
    if (line.childElementCount) card.appendChild(line);

    const ids = el('div', 'conn-ids');
    const idList = [
      ['upstream', d.upstream],
      ['route', d.route],
      ['resource', d.resource_indicator],
      [c.kind === 'authorization_server' ? 'issuer' : 'AS issuer', d.issuer],
      ['authorization server', d.authorization_server],
      ['agent id', d.agent_id],
      ['registration id', d.registration_id],
    ];
    idList.forEach(([label, value]) => {
      if (typeof value === 'string' && value) ids.appendChild(idButton(label, value));
    });
    if (isObject(d.plugin)) {
      Object.keys(d.plugin).sort().forEach((k) => {
        const v = d.plugin[k];
        if (k === 'authorization_server' && v === d.authorization_server) return;
        if (typeof v === 'string' && v) ids.appendChild(idButton(k.replace(/_/g, ' '), v));
      });
    }
    if (ids.childElementCount) card.appendChild(ids);

    if (isObject(c.counts)) {
      const n = c.counts;
      const bits = [];
      const plural = (x, one, many) => x + ' ' + (x === 1 ? one : many);
      if (typeof n.requests === 'number') bits.push(plural(n.requests, 'request', 'requests'));
      if (typeof n.failures === 'number' && n.failures) bits.push(plural(n.failures, 'failure', 'failures'));
      if (typeof n.upstream_errors === 'number' && n.upstream_errors) bits.push(plural(n.upstream_errors, 'upstream error', 'upstream errors'));
      if (typeof n.step_ups === 'number' && n.step_ups) bits.push(plural(n.step_ups, 'step-up', 'step-ups'));
      // What the gateway's governance refused (policy rules, rate limits).
      if (typeof n.denied === 'number' && n.denied) bits.push(plural(n.denied, 'call denied by policy', 'calls denied by policy'));
      if (typeof n.rate_limited === 'number' && n.rate_limited) bits.push(plural(n.rate_limited, 'call rate-limited', 'calls rate-limited'));
      if (bits.length) card.appendChild(el('div', 'conn-counts', bits.join(' · ')));
    }

    if (isObject(c.last_error)) {
      const e = c.last_error;
      const box = el('div', 'conn-last-error');
      const head2 = el('div', 'conn-last-error-head');
      head2.appendChild(el('span', 'conn-last-error-code', str(e.code) || 'error'));
      if (e.at) head2.appendChild(timeEl(e.at, ''));
      box.appendChild(head2);
      if (e.message) box.appendChild(el('div', 'conn-last-error-message', str(e.message)));
      card.appendChild(box);
    }

    if (u) card.appendChild(renderUserState(u));
    return card;
  }

  /** Replaces `parent`'s children with `nodes`, touching only what changed (keeps focus and open state). */
  function syncChildren(parent, nodes) {
    nodes.forEach((node, i) => {
      const current = parent.children[i];
      if (current !== node) parent.insertBefore(node, current || null);
    });
    while (parent.children.length > nodes.length) parent.lastElementChild.remove();
  }

  const cardCache = new Map(); // name -> {sig, node}

  function renderPanel(doc, errorMessage) {
    const body = ui.panelBody;
    const active = document.activeElement;
    let focusCard = null;
    let focusKey = null;
    if (active && body.contains(active)) {
      const card = active.closest('.conn-card');
      if (card) { focusCard = card.dataset.name; focusKey = active.dataset.focusKey || null; }
    }

    const nodes = [];
    if (errorMessage) {
      const err = el('div', 'panel-error', 'Could not refresh: ' + errorMessage);
      err.setAttribute('role', 'alert');
      nodes.push(err);
    }
    if (!isObject(doc)) {
      if (!errorMessage) nodes.push(el('p', 'panel-loading', 'Loading connections…'));
      syncChildren(body, nodes);
      return;
    }

    const config = isObject(doc.config) ? doc.config : null;
    if (config) {
      const cfg = el('div', 'panel-config');
      const bits = el('div', 'panel-config-line');
      if (config.generation !== undefined) bits.appendChild(el('span', null, 'Registry generation ' + config.generation));
      if (config.loaded_at) bits.appendChild(timeEl(config.loaded_at, 'loaded '));
      cfg.appendChild(bits);
      if (isObject(config.last_error)) {
        const warn = el('div', 'panel-config-error');
        warn.appendChild(el('strong', null, 'The last configuration change was not applied. '));
        warn.appendChild(document.createTextNode(str(config.last_error.message)));
        cfg.appendChild(warn);
      }
      nodes.push(cfg);
    }

    const userConns = new Map();
    if (isObject(doc.user)) asArray(doc.user.connections).filter(isObject).forEach((u) => userConns.set(str(u.name), u));

    const connections = asArray(doc.connections).filter(isObject);
    const sections = SECTIONS.slice();
    connections.forEach((c) => {
      if (!sections.some((s) => s.kind === c.kind)) sections.push({ kind: str(c.kind), title: humanize(c.kind) || 'Other' });
    });

    const seen = new Set();
    sections.forEach((s) => {
      const list = connections.filter((c) => str(c.kind) === s.kind);
      let section = body.querySelector(':scope > .panel-section[data-kind="' + CSS.escape(s.kind) + '"]');
      if (!section) {
        section = el('section', 'panel-section');
        section.dataset.kind = s.kind;
        const h = el('h3', 'panel-section-title');
        h.appendChild(el('span', 'panel-section-name', s.title));
        h.appendChild(el('span', 'panel-section-count'));
        section.appendChild(h);
        section.appendChild(el('div', 'panel-section-list'));
      }
      section.querySelector('.panel-section-count').textContent = String(list.length);
      const listEl = section.querySelector('.panel-section-list');
      const cards = list.map((c) => {
        const name = str(c.name);
        seen.add(name);
        const u = userConns.get(name) || null;
        const sig = JSON.stringify([c, u]);
        const cached = cardCache.get(name);
        if (cached && cached.sig === sig) return cached.node;
        const node = renderConnCard(c, u);
        cardCache.set(name, { sig, node });
        return node;
      });
      if (!cards.length) cards.push(el('p', 'panel-none', 'None configured.'));
      syncChildren(listEl, cards);
      nodes.push(section);
    });
    [...cardCache.keys()].forEach((k) => { if (!seen.has(k)) cardCache.delete(k); });

    syncChildren(body, nodes);
    refreshTimes(body);
    const now = new Date();
    ui.panelSub.textContent = 'Through the Switchboard gateway · updated ' + now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

    // Keyboard users keep their place when a card was rebuilt.
    if (focusCard && (!document.activeElement || document.activeElement === document.body)) {
      const card = body.querySelector('.conn-card[data-name="' + CSS.escape(focusCard) + '"]');
      const target = card && ((focusKey && card.querySelector('[data-focus-key="' + CSS.escape(focusKey) + '"]')) || card.querySelector('button'));
      if (target) target.focus(); else ui.panel.focus();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  function init() {
    ui.boot = $('boot');
    ui.bootText = $('boot-text');
    ui.bootRetry = $('boot-retry');
    ui.signin = $('signin');
    ui.signinNote = $('signin-note');
    ui.app = $('app');
    ui.topbar = ui.app.querySelector('.topbar');
    ui.chat = $('chat');
    ui.userName = $('user-name');
    ui.userAvatar = $('user-avatar');
    ui.toggle = $('panel-toggle');
    ui.signOut = $('sign-out');
    ui.scroller = $('scroller');
    ui.empty = $('empty');
    ui.emptyTitle = $('empty-title');
    ui.messages = $('messages');
    ui.typing = $('typing');
    ui.typingText = $('typing-text');
    ui.form = $('chat-form');
    ui.input = $('chat-input');
    ui.send = $('send');
    ui.panel = $('panel');
    ui.panelBody = $('panel-body');
    ui.panelSub = $('panel-sub');
    ui.panelClose = $('panel-close');
    ui.backdrop = $('panel-backdrop');

    setupMarkdown();

    ui.bootRetry.addEventListener('click', boot);

    ui.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      sendMessage();
    });
    ui.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        sendMessage();
      }
    });
    ui.input.addEventListener('input', autosize);
    autosize();

    document.querySelectorAll('.suggestion').forEach((b) => {
      b.addEventListener('click', () => {
        ui.input.value = b.textContent;
        autosize();
        ui.input.focus();
      });
    });

    ui.signOut.addEventListener('click', signOut);
    ui.toggle.addEventListener('click', () => setPanelOpen(!state.panelOpen, { focus: !state.panelOpen || isNarrowOverlay() }));
    ui.panelClose.addEventListener('click', () => setPanelOpen(false, { focus: true }));
    ui.backdrop.addEventListener('click', () => setPanelOpen(false, { focus: true }));
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && state.panelOpen && isNarrowOverlay() && !ui.app.hidden) {
        ev.preventDefault();
        setPanelOpen(false, { focus: true });
      }
    });
    const onWideChange = () => {
      if (ui.app.hidden) return;
      setPanelOpen(wide.matches ? state.panelWideOpen : false, { focus: false, remember: false });
    };
    if (wide.addEventListener) wide.addEventListener('change', onWideChange);
    else if (wide.addListener) wide.addListener(onWideChange);

    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.panelOpen) refreshPanel();
    });

    boot();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
