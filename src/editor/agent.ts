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
 *
 * Unusual pages it copes with: the page's own frames, objects, embeds and media are made
 * transparent to the pointer in select and pick modes (else they take the click); Event's
 * preventDefault and stopImmediatePropagation are kept as they were when the agent started (a
 * page that replaces them still cannot follow links in select mode); a page that scrolls an
 * inner container instead of the window has that container's scroll reported and restored;
 * Alt+click reaches under full-screen overlays (cookie banners, modals).
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
  // Kept before the page's scripts run: a page may replace them (and make them no-ops).
  const EP = Event.prototype;
  const preventDefault = EP.preventDefault;
  const stopImmediate = EP.stopImmediatePropagation;

  let mode: FrameMode = "select";
  /** The outlines: [element, its box]. */
  let boxes: Array<[Element, HTMLElement]> = [];
  let hoverBox: HTMLElement | undefined;
  let hovered: Element | null = null;
  /** The selected element when it has no number (a change or a script inserted it). */
  let loose: Element | null = null;
  let frame = 0;
  let scrollTimer: ReturnType<typeof setTimeout> | 0 = 0;
  /** The pointer's last position (viewport). */
  let pointerX = 0;
  let pointerY = 0;
  /** The last click selection: [x, y, element] (Alt+click goes on below it at that point). */
  let last: [number, number, Element] | undefined;
  /** The page's main scrolling element, when the window does not scroll (see `scroller`). */
  let mainScroller: Element | null = null;

  /** Elements that would take a click away from the page (their own document or controls). */
  const MEDIA = "iframe,object,embed,video,audio";
  // In select and pick modes the click must reach the element itself, not a frame inside it.
  const mediaStyle = D.createElement("style");
  mediaStyle.setAttribute("data-ss-editor", "");
  mediaStyle.textContent = `${MEDIA}{pointer-events:none!important}`;
  /** Adds or removes mediaStyle for the mode (appended last, to come after the page's styles). */
  const applyMode = (): void => {
    if (mode === "browse") mediaStyle.remove();
    else D.documentElement.appendChild(mediaStyle);
  };
  applyMode();

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

  /**
   * The element at (x, y) when `el` was hit: a frame, object, embed or media element inside `el`
   * under the point (they let the pointer through in select mode, so `el` is their container).
   */
  const pierce = (el: Element | null, x: number, y: number): Element | null => {
    let hit = el;
    if (el)
      for (const m of Array.from(el.querySelectorAll(MEDIA))) {
        const r = m.getBoundingClientRect();
        if (x >= r.left && x < r.right && y >= r.top && y < r.bottom) hit = m;
      }
    return hit;
  };

  /**
   * The scroll the editor remembers: the window's, unless the window itself cannot scroll (its
   * content fits) — then the page's main scrolling element's: among the elements under <body>
   * with `overflow-y` auto/scroll/overlay and more content than room, the largest on screen (the
   * first of equals). Found again when the one found before left the page.
   */
  const scroller = (): Element | null => {
    const root = D.scrollingElement ?? D.documentElement;
    if (root.scrollHeight > root.clientHeight || root.scrollWidth > root.clientWidth) return null;
    if (mainScroller?.isConnected) return mainScroller;
    let best: Element | null = null;
    let area = 0;
    for (const el of Array.from(D.body?.querySelectorAll("*") ?? [])) {
      if (el.scrollHeight <= el.clientHeight) continue;
      const a = el.clientWidth * el.clientHeight;
      if (a > area && /auto|scroll|overlay/.test(getComputedStyle(el).overflowY)) {
        best = el;
        area = a;
      }
    }
    return (mainScroller = best);
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
    if (hoverBox) place(hoverBox, mode === "browse" ? null : pierce(hovered, pointerX, pointerY));
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
    preventDefault.call(e);
    stopImmediate.call(e);
    if (e.type !== "click") return;
    const { clientX: x, clientY: y, altKey } = e as MouseEvent;
    let el = pierce(resolve(e.target), x, y);
    if (altKey) {
      // Under the element selected last time at this point (back to the top after the last).
      const stack = [
        ...new Set([
          el,
          ...D.elementsFromPoint(x, y)
            .map(resolve)
            .filter((s) => !s?.hasAttribute("data-ss-editor")),
        ]),
      ];
      const at =
        last && Math.abs(last[0] - x) + Math.abs(last[1] - y) < 4 ? stack.indexOf(last[2]) : 0;
      el = stack[at + 1] ?? stack[0] ?? el;
    }
    if (!el) return;
    last = [x, y, el];
    if (mode === "pick") post({ type: "picked", ...describe(el) });
    else select(el);
  };
  // (`submit` too, although the frame's sandbox already stops form submissions.)
  for (const type of ["click", "mousedown", "mouseup", "auxclick", "dblclick", "submit"])
    on(type, swallow);
  // Stopped (not prevented: mousedown must still come, to be prevented itself).
  for (const type of ["pointerdown", "pointerup"])
    on(type, (e) => {
      if (mode !== "browse") stopImmediate.call(e);
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
    preventDefault.call(e);
    post({ type: "navigate", href: url.href });
  });

  // ---- hover outline
  on<MouseEvent>(
    "mousemove",
    (e) => {
      if (mode === "browse") return;
      hovered = resolve(e.target);
      pointerX = e.clientX;
      pointerY = e.clientY;
      hoverBox ||= box("hover");
      redraw();
    },
    { capture: true, passive: true },
  );
  // The pointer left the frame (`mouseleave` on `document` never fires): no related target.
  on<MouseEvent>(
    "mouseout",
    (e) => {
      if (e.relatedTarget) return;
      hovered = null;
      redraw();
    },
    { capture: true, passive: true },
  );

  // ---- keys the editor handles: undo, redo, Escape
  on<KeyboardEvent>("keydown", (e) => {
    const undoKey = (e.ctrlKey || e.metaKey) && /^[zy]$/i.test(e.key);
    if (!undoKey && e.key !== "Escape") return;
    const t = e.target as HTMLElement | null;
    const field = !!t && (/^(input|textarea|select)$/i.test(t.localName) || t.isContentEditable);
    if (undoKey && mode === "browse" && field) return; // the field's own undo
    if (undoKey) preventDefault.call(e);
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
        const s = scroller();
        post(
          s
            ? { type: "scroll", x: s.scrollLeft, y: s.scrollTop }
            : { type: "scroll", x: W.scrollX, y: W.scrollY },
        );
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
        applyMode();
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
        (scroller() ?? W).scrollTo(Number(m.x) || 0, Number(m.y) || 0);
      }
    },
    { capture: false },
  );

  const hello = (): void => {
    applyMode(); // again, now after the page's own styles
    post({
      type: "hello",
      url: location.href,
      title: D.title,
      elements: D.querySelectorAll(`[${INDEX}]`).length,
    });
  };
  if (D.readyState === "loading") D.addEventListener("DOMContentLoaded", safe(hello));
  else hello();
}
