/**
 * The visual editor's agent: the first script of the previewed page, injected by the edge
 * (src/edge/editor-preview.ts) into the editor's frame only. It lets the editor
 * (src/editor/editor.ts, in the parent window) select elements of the page, outline them, and
 * hear about links and keys, through the messages of src/editor/protocol.ts — nothing else.
 *
 * It runs inside someone else's page, before the page's own scripts: every listener is on
 * `window` in the capture phase (so it runs before the page's), wrapped in try/catch (an error
 * here must never reach the page), and its outlines are inert elements (`data-ss-editor`,
 * `pointer-events: none`) that the page's CSS cannot restyle (`all: initial`). In select and
 * pick modes a click never reaches the page: no link is followed, no form submitted, no control
 * focused or toggled. Budget: 6 KB gzipped (test/browser/budget.test.ts).
 */
import {
  INDEX_ATTRIBUTE as INDEX,
  LIMITS,
  MAX_HIGHLIGHT,
  MESSAGE_SOURCE,
  type FrameMessage,
  type FrameMode,
} from "./protocol";

(() => {
  try {
    start();
  } catch {
    // the page must not notice the editor
  }
})();

function start(): void {
  const W = window;
  const D = document;
  /** The editor's origin: the page URL's (the frame itself has an opaque origin). */
  const editorOrigin = location.origin;
  const parentWindow = W.parent;
  if (parentWindow === W) return; // opened on its own: nobody to talk to

  let mode: FrameMode = "select";
  /** The outlines: [element, its box]. */
  let boxes: Array<[Element, HTMLElement]> = [];
  let hoverBox: HTMLElement | undefined;
  let hovered: Element | null = null;
  /** The selected element when it has no number (a change or a script inserted it). */
  let loose: Element | null = null;
  let frame = 0;
  let scrollTimer: ReturnType<typeof setTimeout> | 0 = 0;

  const post = (message: FrameMessage): void => {
    try {
      parentWindow.postMessage({ source: MESSAGE_SOURCE, ...message }, editorOrigin);
    } catch {
      // the editor is gone
    }
  };

  /** `f` as a listener that never throws into the page. */
  const safe =
    <E extends Event>(f: (e: E) => void) =>
    (e: E): void => {
      try {
        f(e);
      } catch {
        // ignored: the page must not notice the editor
      }
    };

  const on = <E extends Event>(
    type: string,
    f: (e: E) => void,
    options: AddEventListenerOptions = { capture: true },
  ): void => W.addEventListener(type, safe(f) as EventListener, options);

  const indexOf = (el: Element): number | null => {
    const value = el.getAttribute(INDEX);
    return value && /^\d+$/.test(value) ? +value : null;
  };

  const byIndex = (index: unknown): Element | null =>
    typeof index === "number" && Number.isSafeInteger(index)
      ? D.querySelector(`[${INDEX}="${index}"]`)
      : null;

  /** The element a click means: inside an SVG image, the whole image. */
  const resolve = (target: EventTarget | null): Element | null => {
    let el: Element | null =
      target instanceof Element ? target : target instanceof Node ? target.parentElement : null;
    while (el instanceof SVGElement && el.ownerSVGElement) el = el.ownerSVGElement;
    return el;
  };

  const box = (kind: "hover" | "selected" | "match"): HTMLElement => {
    const b = D.createElement("ss-editor-box");
    b.setAttribute("data-ss-editor", "");
    b.style.cssText =
      "all:initial;position:fixed;pointer-events:none;z-index:2147483647;box-sizing:border-box;display:none;box-shadow:0 0 0 1px #fff;border:2px " +
      (kind === "match" ? "dashed #0b57d0" : kind === "hover" ? "solid #c2410c" : "solid #0b57d0") +
      (kind === "selected" ? ";background:rgba(11,87,208,.1)" : "");
    return b;
  };

  const place = (b: HTMLElement, el: Element | null): void => {
    const r = el && el.isConnected ? el.getBoundingClientRect() : null;
    if (!r || (r.width === 0 && r.height === 0)) {
      b.style.display = "none";
      return;
    }
    if (!b.isConnected) D.documentElement.appendChild(b);
    const s = b.style;
    s.display = "block";
    s.left = `${r.left}px`;
    s.top = `${r.top}px`;
    s.width = `${r.width}px`;
    s.height = `${r.height}px`;
  };

  const draw = (): void => {
    frame = 0;
    for (const [el, b] of boxes) place(b, el);
    if (hoverBox) place(hoverBox, mode === "browse" ? null : hovered);
  };
  const redraw = (): void => {
    frame ||= requestAnimationFrame(draw);
  };

  const highlight = (indices: unknown, selected: unknown): void => {
    for (const [, b] of boxes) b.remove();
    boxes = [];
    const list = Array.isArray(indices) ? indices.slice(0, MAX_HIGHLIGHT) : [];
    for (const i of list) {
      const el = i === selected ? null : byIndex(i);
      if (el) boxes.push([el, box("match")]);
    }
    const chosen = selected === null ? loose : byIndex(selected);
    if (chosen) boxes.push([chosen, box("selected")]);
    draw();
  };

  const cut = (s: string, max: number): string => (s.length > max ? s.slice(0, max) : s);

  /** What the editor is told about `el` (protocol.ts ElementInfo). */
  const describe = (el: Element) => {
    const text = el.textContent ?? "";
    const html = el.innerHTML;
    const outer = el.outerHTML;
    const ancestors: number[] = [];
    for (let p = el.parentElement; p; p = p.parentElement) {
      const i = indexOf(p);
      if (i !== null) ancestors.push(i);
    }
    return {
      index: indexOf(el),
      tag: el.localName,
      id: el.id,
      classes: Array.from(el.classList),
      attributes: Array.from(el.attributes)
        .filter((a) => !a.name.startsWith("data-ss-"))
        .map((a): [string, string] => [a.name, a.value]),
      text: cut(text, LIMITS.text),
      html: cut(html, LIMITS.html),
      outerHtml: cut(outer, LIMITS.html),
      truncated: text.length > LIMITS.text || outer.length > LIMITS.html,
      ancestors,
    };
  };

  /** Selects `el`; `request` is the editor's `selectIndex` this answers (none for a click). */
  const select = (el: Element, request?: number): void => {
    const info = describe(el);
    loose = info.index === null ? el : null;
    highlight([], info.index);
    post({ type: "select", ...info, ...(request === undefined ? {} : { request }) });
  };

  // ---- select and pick modes: the page never sees a click, a press or a submit.
  const swallow = (e: Event): void => {
    if (mode === "browse") return;
    e.preventDefault();
    e.stopImmediatePropagation();
    if (e.type !== "click") return;
    const el = resolve(e.target);
    if (!el) return;
    if (mode === "pick") post({ type: "picked", ...describe(el) });
    else select(el);
  };
  // (`submit` too, although the frame's sandbox already stops form submissions.)
  for (const type of ["click", "mousedown", "mouseup", "auxclick", "dblclick", "submit"])
    on(type, swallow);
  // Stopped (not prevented: mousedown must still come, to be prevented itself).
  for (const type of ["pointerdown", "pointerup"])
    on(type, (e) => {
      if (mode !== "browse") e.stopImmediatePropagation();
    });

  // ---- browse mode: the page works, but leaving it becomes a `navigate` for the editor. The
  // frame's sandbox blocks form submissions before any `submit` event: a GET form's submit
  // button is followed here like a link with the fields in the query (other methods cannot be
  // replayed as a page load).
  on<MouseEvent>("click", (e) => {
    if (mode !== "browse" || e.button !== 0) return;
    const el = resolve(e.target);
    const button = el?.closest("button,input") as HTMLButtonElement | null;
    const form = button?.form;
    let url: URL;
    if (form && /^(submit|image)$/.test(button!.type)) {
      const method = button!.getAttribute("formmethod") ?? form.getAttribute("method") ?? "get";
      if (method.toLowerCase() !== "get") return;
      url = new URL(button!.hasAttribute("formaction") ? button!.formAction : form.action);
      url.search = new URLSearchParams(
        new FormData(form, button) as unknown as Record<string, string>,
      ).toString();
    } else {
      const link = el?.closest("a[href],area[href]");
      if (!link) return;
      url = new URL(link.getAttribute("href") ?? "", D.baseURI);
      if (url.hash && url.href.split("#")[0] === location.href.split("#")[0]) return; // in-page
    }
    if (!/^https?:$/.test(url.protocol)) return;
    e.preventDefault();
    post({ type: "navigate", href: url.href });
  });

  // ---- hover outline
  on<MouseEvent>(
    "mousemove",
    (e) => {
      if (mode === "browse") return;
      hovered = resolve(e.target);
      hoverBox ||= box("hover");
      redraw();
    },
    { capture: true, passive: true },
  );
  D.addEventListener(
    "mouseleave",
    safe(() => {
      hovered = null;
      redraw();
    }),
  );

  // ---- keys the editor handles: undo, redo, Escape
  on<KeyboardEvent>("keydown", (e) => {
    const undoKey = (e.ctrlKey || e.metaKey) && /^[zy]$/i.test(e.key);
    if (!undoKey && e.key !== "Escape") return;
    const t = e.target as HTMLElement | null;
    const field = !!t && (/^(input|textarea|select)$/i.test(t.localName) || t.isContentEditable);
    if (undoKey && mode === "browse" && field) return; // the field's own undo
    if (undoKey) e.preventDefault();
    if (e.key === "Escape" && loose) {
      loose = null;
      highlight([], null);
    }
    post({
      type: "key",
      key: e.key,
      ctrlKey: e.ctrlKey,
      metaKey: e.metaKey,
      shiftKey: e.shiftKey,
    });
  });

  // ---- scrolling: outlines follow, the editor remembers where the page was
  on(
    "scroll",
    () => {
      redraw();
      scrollTimer ||= setTimeout(() => {
        scrollTimer = 0;
        post({ type: "scroll", x: W.scrollX, y: W.scrollY });
      }, 150);
    },
    { capture: true, passive: true },
  );
  on("resize", redraw, { passive: true });
  on("load", redraw, { passive: true });
  // Late layout shifts (fonts, images, the page's scripts) move outlined elements.
  setInterval(() => (boxes.length || hovered) && redraw(), 500);

  // ---- the editor's messages (from the parent window only)
  on<MessageEvent>(
    "message",
    (e) => {
      const m = e.data as Record<string, unknown> | null;
      if (e.source !== parentWindow || !m || m.source !== MESSAGE_SOURCE) return;
      if (m.type === "mode" && /^(select|browse|pick)$/.test(String(m.mode))) {
        mode = m.mode as FrameMode;
        loose = null;
        redraw();
      } else if (m.type === "highlight") {
        highlight(m.indices, m.selected);
      } else if (m.type === "selectIndex") {
        const el = byIndex(m.index);
        if (!el) return;
        const r = el.getBoundingClientRect();
        if (m.scroll !== false && (r.bottom < 0 || r.top > W.innerHeight))
          el.scrollIntoView({ block: "center" });
        select(el, typeof m.request === "number" ? m.request : undefined);
      } else if (m.type === "scrollTo") {
        W.scrollTo(Number(m.x) || 0, Number(m.y) || 0);
      }
    },
    { capture: false },
  );

  const hello = (): void =>
    post({
      type: "hello",
      url: location.href,
      title: D.title,
      elements: D.querySelectorAll(`[${INDEX}]`).length,
    });
  if (D.readyState === "loading") D.addEventListener("DOMContentLoaded", safe(hello));
  else hello();
}
