"use strict";
// The part of the browser's XMLHttpRequest that phoenix.js's Ajax (LongPoll) uses, on Node's http module.
// phoenix@1.7 has no fetch path, and Node 20 has no XMLHttpRequest; this is the browser API the client needs,
// not a stand-in for the server. It does real HTTP/1.1 requests to the live server (keep-alive off).
const http = require("http");

class XMLHttpRequest {
  constructor() {
    this.readyState = 0;
    this.status = 0;
    this.responseText = "";
    this.timeout = 0;
    this.onreadystatechange = null;
    this.onerror = null;
    this.ontimeout = null;
    this._headers = {};
    this._req = null;
    this._done = false;
  }

  open(method, url) {
    this._method = method;
    this._url = url;
    this.readyState = 1;
  }

  setRequestHeader(key, value) {
    this._headers[key] = value;
  }

  send(body) {
    const u = new URL(this._url);
    const headers = { ...this._headers };
    if (body != null) headers["Content-Length"] = Buffer.byteLength(body);
    const req = http.request(
      { method: this._method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          if (this._done) return;
          this._finish();
          this.status = res.statusCode;
          this.responseText = Buffer.concat(chunks).toString("utf8");
          this.readyState = 4;
          if (XMLHttpRequest.onResponse) XMLHttpRequest.onResponse(this);
          this.onreadystatechange && this.onreadystatechange();
        });
        res.on("error", () => this._fail());
      },
    );
    req.on("error", () => this._fail());
    if (this.timeout) {
      this._timer = setTimeout(() => {
        if (this._done) return;
        this._finish();
        req.destroy();
        this.ontimeout && this.ontimeout();
      }, this.timeout);
    }
    this._req = req;
    if (body != null) req.write(body);
    req.end();
  }

  abort() {
    if (this._done) return;
    this._finish();
    if (this._req) this._req.destroy();
  }

  _finish() {
    this._done = true;
    clearTimeout(this._timer);
  }

  _fail() {
    if (this._done) return;
    this._finish();
    this.status = 0;
    this.readyState = 4;
    this.onerror && this.onerror();
    this.onreadystatechange && this.onreadystatechange();
  }
}

module.exports = { XMLHttpRequest };
