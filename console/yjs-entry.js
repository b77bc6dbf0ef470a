// Bundled by `make console` into server/tornado_phoenix/static/yjs.min.js (esbuild, IIFE): the console's
// Document panel gets Yjs, y-protocols (sync, awareness) and lib0's encoder/decoder as window.TPYjs.
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";

window.TPYjs = { Y, syncProtocol, awarenessProtocol, encoding, decoding };
