// Small element builders the table views (Automation, Channels) share.

/** Return a table cell holding `children`. */
export function cell(...children) {
  const td = document.createElement("td");
  td.append(...children);
  return td;
}

/** Return a span of plain text, with a class when given. */
export function text(value, className) {
  const span = document.createElement("span");
  if (className) span.className = className;
  span.textContent = value;
  return span;
}
