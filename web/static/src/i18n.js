// The page embeds its language's catalogue (the same .po files the templates use) as JSON.
let messages = null;

function catalogue() {
  if (messages === null) {
    const node = document.getElementById("i18n");
    messages = node ? JSON.parse(node.textContent) : {};
  }
  return messages;
}

/** Translate an English message id, filling {name} placeholders from params. */
export function t(msgid, params = {}) {
  const text = catalogue()[msgid] ?? msgid;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Mark a message id for extraction where it is translated later with t(variable). */
export const N_ = (msgid) => msgid;
