// Server-Sent Events read from a fetch() body. EventSource cannot POST a question, so the page parses the
// stream itself, by the WHATWG rules: lines end in \r\n, \n or \r; `event:` names the event, `data:` lines
// join with \n; a line starting with ":" is a comment (the server's keep-alive pings); a blank line
// dispatches; an event left unfinished when the stream ends is dropped.

export class SseParser {
  constructor() {
    this.buffer = "";
    this.event = "";
    this.data = [];
    this.pendingCR = false; // the last chunk ended in \r, which may be the first half of \r\n
    this.started = false;
  }

  /** Feed a piece of decoded text; returns the events it completed, as {event, data}. */
  push(chunk) {
    if (!this.started && chunk) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1); // a byte order mark, if any
    }
    if (this.pendingCR && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.pendingCR = false;
    const text = this.buffer + chunk;
    const events = [];
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = lineEnd.exec(text)) !== null) {
      this.line(text.slice(start, match.index), events);
      start = lineEnd.lastIndex;
      if (match[0] === "\r" && start === text.length) this.pendingCR = true;
    }
    this.buffer = text.slice(start);
    return events;
  }

  line(line, events) {
    if (line === "") {
      if (this.data.length) events.push({ event: this.event || "message", data: this.data.join("\n") });
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    // `id` and `retry` are for EventSource reconnection, which a POSTed question does not do.
  }
}

/** Yields {event, data} from a ReadableStream of bytes (a fetch Response body). */
export async function* readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield* parser.push(value);
    }
  } finally {
    reader.cancel().catch(() => {}); // stopping early (Stop, an error event) closes the connection
  }
}
