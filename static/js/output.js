// Buffered rendering: deltas are queued as they arrive and written to the page at most once
// per FLUSH_MS, in one DOM append each time, so a fast stream never repaints per token.
// A delta that cannot be rendered with its marks is written as plain text and reported to
// `onError`: flushes run from a timer, where a throw would be lost and the text with it.

export const FLUSH_MS = 50;

export class OutputBuffer {
  constructor(element, typeNames, { onError = () => {} } = {}) {
    this.element = element;
    this.typeNames = typeNames;
    this.onError = onError;
    this.reset();
  }

  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pending = [];
    this.text = "";
    this.deltas = 0;
    this.flushes = 0;
    this.element.replaceChildren();
    this.publish();
  }

  push(delta) {
    if (typeof delta?.text !== "string") throw new TypeError("a delta without text");
    this.pending.push(delta);
    this.text += delta.text;
    this.deltas += 1;
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending.length) return;
    const fragment = document.createDocumentFragment();
    const pending = this.pending;
    this.pending = [];
    for (const delta of pending) {
      const part = document.createDocumentFragment();
      try {
        this.render(part, delta);
      } catch (error) {
        part.replaceChildren(document.createTextNode(delta.text));
        this.onError(error);
      }
      fragment.append(part);
    }
    this.element.append(fragment);
    this.flushes += 1;
    this.publish();
  }

  publish() {
    // Counters as data attributes: the browser tests compare repaints with deltas.
    this.element.dataset.deltas = String(this.deltas);
    this.element.dataset.flushes = String(this.flushes);
    this.element.dataset.chars = String(this.text.length);
  }

  // `marks` offsets count code points (they come from Python), so slice an array of them.
  render(parent, { text, marks }) {
    if (!marks || !marks.length) {
      parent.append(document.createTextNode(text));
      return;
    }
    const chars = Array.from(text);
    let position = 0;
    for (const [start, end, kind, type] of [...marks].sort((a, b) => a[0] - b[0])) {
      if (start < position) continue;
      if (start > position) parent.append(document.createTextNode(chars.slice(position, start).join("")));
      const mark = document.createElement("mark");
      mark.className = kind;
      const words = this.typeNames[type] || "a sensitive value";
      mark.title = kind === "restored" ? `Put back after redaction (${words})` : `Masked (${words})`;
      mark.textContent = chars.slice(start, end).join("");
      parent.append(mark);
      position = end;
    }
    if (position < chars.length) parent.append(document.createTextNode(chars.slice(position).join("")));
  }
}
