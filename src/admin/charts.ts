/**
 * Server-drawn SVG charts for the admin pages: no chart library, no script, nothing fetched —
 * the pages work offline and under a CSP without `script-src`. Every text that reaches the SVG
 * goes through `escapeXml`.
 */

/** One line of a line chart: points in x order. */
export interface Series {
  label: string;
  points: Array<{ x: string; y: number }>;
}

/** One row of an interval (forest) chart. */
export interface IntervalRow {
  label: string;
  estimate: number;
  /** −Infinity / Infinity: an open end, drawn to the edge of the plot. */
  low: number;
  high: number;
  /** "winner" | "loser" | other: picks the colour. */
  tone: "good" | "bad" | "neutral";
}

/** Colour-blind-safe palette (Okabe–Ito), in series order. */
export const PALETTE = [
  "#0072B2",
  "#E69F00",
  "#009E73",
  "#CC79A7",
  "#56B4E9",
  "#D55E00",
  "#000000",
];

const TONES = { good: "#009E73", bad: "#D55E00", neutral: "#555555" };

/** `&`, `<`, `>`, `"` and `'` as entities. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const fmt = (n: number) => (Number.isFinite(n) ? Number(n.toFixed(2)).toString() : "0");

/** A percentage label, e.g. 0.1234 → "12.3%". */
export function percent(value: number, digits = 1): string {
  return `${(value * 100).toFixed(digits)}%`;
}

/** "Nice" axis bounds and ticks covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const rawStep = (max - min) / Math.max(1, count - 1);
  const magnitude = 10 ** Math.floor(Math.log10(rawStep));
  const step =
    [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rawStep) ?? 10 * magnitude;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let t = first; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max)
    ticks.push(Number((first + ticks.length * step).toPrecision(12)));
  return ticks;
}

/**
 * A line chart of `series` over shared x values (days), y formatted by `formatY`. Returns an
 * accessible `<svg role="img">` with a `<title>`; an empty chart says "No data yet".
 */
export function lineChart(
  title: string,
  series: readonly Series[],
  formatY: (y: number) => string = (y) => percent(y),
  size = { width: 640, height: 260 },
): string {
  const { width, height } = size;
  const margin = { top: 16, right: 16, bottom: 56, left: 56 };
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort();
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite);
  const head = `<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" data-chart="line" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}"><title>${escapeXml(title)}</title>`;
  if (xs.length === 0 || ys.length === 0)
    return `${head}<text x="${width / 2}" y="${height / 2}" text-anchor="middle" class="empty">No data yet</text></svg>`;
  const ticks = niceTicks(Math.min(0, ...ys), Math.max(...ys));
  const y0 = ticks[0]!;
  const y1 = ticks[ticks.length - 1]!;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const xAt = (x: string) =>
    margin.left + (xs.length === 1 ? plotW / 2 : (xs.indexOf(x) / (xs.length - 1)) * plotW);
  const yAt = (y: number) => margin.top + plotH - ((y - y0) / (y1 - y0 || 1)) * plotH;
  const parts: string[] = [head];
  for (const t of ticks)
    parts.push(
      `<line x1="${margin.left}" x2="${width - margin.right}" y1="${fmt(yAt(t))}" y2="${fmt(yAt(t))}" stroke="#e5e5e5"/>`,
      `<text x="${margin.left - 6}" y="${fmt(yAt(t) + 4)}" text-anchor="end" font-size="11">${escapeXml(formatY(t))}</text>`,
    );
  const labelEvery = Math.max(1, Math.ceil(xs.length / 6));
  xs.forEach((x, i) => {
    if (i % labelEvery !== 0 && i !== xs.length - 1) return;
    // The outermost labels are anchored inwards so they are not cut off at the chart's edges.
    const anchor =
      xs.length > 1 && i === xs.length - 1 ? "end" : xs.length > 1 && i === 0 ? "start" : "middle";
    parts.push(
      `<text x="${fmt(xAt(x))}" y="${height - margin.bottom + 16}" text-anchor="${anchor}" font-size="11">${escapeXml(x)}</text>`,
    );
  });
  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const points = s.points.filter((p) => Number.isFinite(p.y));
    if (points.length === 0) return;
    const d = points
      .map((p, j) => `${j === 0 ? "M" : "L"}${fmt(xAt(p.x))},${fmt(yAt(p.y))}`)
      .join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${colour}" stroke-width="2" data-series="${escapeXml(s.label)}"/>`,
    );
    for (const p of points)
      parts.push(
        `<circle cx="${fmt(xAt(p.x))}" cy="${fmt(yAt(p.y))}" r="2.5" fill="${colour}"><title>${escapeXml(`${s.label} ${p.x}: ${formatY(p.y)}`)}</title></circle>`,
      );
    const lx = margin.left + (i % 4) * 150;
    const ly = height - 14 - Math.floor(i / 4) * 14;
    parts.push(
      `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${colour}"/>`,
      `<text x="${lx + 14}" y="${ly}" font-size="11">${escapeXml(s.label)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}

/**
 * Intervals around a zero line (lift of each variation vs the baseline): a dot at the estimate,
 * a bar from low to high, coloured by tone.
 */
export function intervalChart(
  title: string,
  rows: readonly IntervalRow[],
  formatX: (x: number) => string = (x) => percent(x),
  width = 640,
): string {
  const rowH = 28;
  const margin = { top: 12, right: 24, bottom: 28, left: 160 };
  const height = margin.top + margin.bottom + Math.max(1, rows.length) * rowH;
  const head = `<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" data-chart="intervals" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}"><title>${escapeXml(title)}</title>`;
  // an open end (±Infinity) is drawn to the plot's edge; NaN means nothing to draw
  const drawable = (r: IntervalRow) =>
    Number.isFinite(r.estimate) && !Number.isNaN(r.low) && !Number.isNaN(r.high);
  const finite = rows.filter(drawable);
  if (finite.length === 0)
    return `${head}<text x="${width / 2}" y="${height / 2}" text-anchor="middle" class="empty">Not enough data for intervals yet</text></svg>`;
  const ends = finite.flatMap((r) => [r.estimate, r.low, r.high]).filter(Number.isFinite);
  const ticks = niceTicks(Math.min(0, ...ends), Math.max(0, ...ends));
  const x0 = ticks[0]!;
  const x1 = ticks[ticks.length - 1]!;
  const plotW = width - margin.left - margin.right;
  const xAt = (x: number) =>
    margin.left + ((Math.min(x1, Math.max(x0, x)) - x0) / (x1 - x0 || 1)) * plotW;
  const parts: string[] = [head];
  for (const t of ticks)
    parts.push(
      `<line x1="${fmt(xAt(t))}" x2="${fmt(xAt(t))}" y1="${margin.top}" y2="${height - margin.bottom}" stroke="${t === 0 ? "#999" : "#eee"}"/>`,
      `<text x="${fmt(xAt(t))}" y="${height - 10}" text-anchor="middle" font-size="11">${escapeXml(formatX(t))}</text>`,
    );
  rows.forEach((r, i) => {
    const y = margin.top + i * rowH + rowH / 2;
    parts.push(
      `<text x="${margin.left - 8}" y="${y + 4}" text-anchor="end" font-size="12">${escapeXml(r.label)}</text>`,
    );
    if (!drawable(r)) return;
    const colour = TONES[r.tone];
    parts.push(
      `<line x1="${fmt(xAt(r.low))}" x2="${fmt(xAt(r.high))}" y1="${y}" y2="${y}" stroke="${colour}" stroke-width="3" data-interval="${escapeXml(r.label)}"/>`,
      `<circle cx="${fmt(xAt(r.estimate))}" cy="${y}" r="5" fill="${colour}"><title>${escapeXml(`${r.label}: ${formatX(r.estimate)} (${Number.isFinite(r.low) ? formatX(r.low) : "−∞"} to ${Number.isFinite(r.high) ? formatX(r.high) : "+∞"})`)}</title></circle>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}
