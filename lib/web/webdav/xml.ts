/** XML for WebDAV: parsing request bodies (namespace-aware) and writing responses. */
import { DOMParser, XMLSerializer } from "@xmldom/xmldom";

export const DAV = "DAV:";

// The DOM types of @xmldom/xmldom, structurally (they are not the browser's lib.dom types).
export interface XNode {
  nodeType: number;
  localName?: string | null;
  namespaceURI?: string | null;
  childNodes: ArrayLike<XNode>;
  textContent?: string | null;
}

export class XmlError extends Error {
  override name = "XmlError";
}

/** Parse a request body; XmlError when it is not well-formed XML. */
export function parseXml(text: string): XNode {
  let failed: string | null = null;
  const fail = (m: string) => {
    failed ??= m;
  };
  const parser = new DOMParser({
    onError: (level: string, msg: string) => {
      if (level !== "warning") fail(msg);
    },
  });
  let doc;
  try {
    doc = parser.parseFromString(text, "text/xml");
  } catch {
    throw new XmlError("the request body is not well-formed XML");
  }
  const root = doc?.documentElement as unknown as XNode | null;
  if (failed || !root) throw new XmlError(`the request body is not well-formed XML`);
  return root;
}

export function elements(n: XNode): XNode[] {
  const out: XNode[] = [];
  for (let i = 0; i < n.childNodes.length; i++) {
    if (n.childNodes[i].nodeType === 1) out.push(n.childNodes[i]);
  }
  return out;
}

export function isDav(n: XNode, local: string): boolean {
  return n.nodeType === 1 && n.namespaceURI === DAV && n.localName === local;
}

export function child(n: XNode, local: string): XNode | undefined {
  return elements(n).find((c) => isDav(c, local));
}

/** Clark notation `{ns}local` of an element's name. */
export function clark(n: XNode): string {
  return `{${n.namespaceURI ?? ""}}${n.localName}`;
}

export function splitClark(key: string): { ns: string; local: string } {
  const i = key.indexOf("}");
  return { ns: key.slice(1, i), local: key.slice(i + 1) };
}

/** An element as standalone XML text (namespace declarations included where needed). */
export function serialize(n: XNode): string {
  return new XMLSerializer().serializeToString(n as never);
}

export function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}

/** An empty element for a property name, with its own namespace declaration. */
export function emptyElement(key: string): string {
  const { ns, local } = splitClark(key);
  if (ns === DAV) return `<D:${local}/>`;
  if (ns === "") return `<${local} xmlns=""/>`;
  return `<X:${local} xmlns:X="${esc(ns)}"/>`;
}
