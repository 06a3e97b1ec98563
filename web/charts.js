// charts.js: the two SVG charts of the dashboard, drawn by hand (no library):
// a horizontal bar chart of each area's value with its confidence interval,
// and a funnel plot with its control limits. Both are images to a screen
// reader (role="img", a title and a description); the table beneath them is
// their accessible equivalent. They draw what they are given and compute no
// statistic: every number comes from the server's reply.

const SVG = 'http://www.w3.org/2000/svg';
let clipIds = 0;

// Makes an SVG element with attributes, appended to parent if given.
export function svgElement(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, attributes = {}) {
  const node = svgElement('text', { x, y, ...attributes }, parent);
  node.textContent = content;
  return node;
}

// Round tick values between lo and hi (about count of them).
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

function linear(domainLo, domainHi, rangeLo, rangeHi) {
  const span = domainHi - domainLo || 1;
  return (v) => rangeLo + ((v - domainLo) / span) * (rangeHi - rangeLo);
}

function finite(x) {
  return typeof x === 'number' && Number.isFinite(x);
}

// An svg with role="img", its title and description, sized to width x height.
function chartRoot(container, width, height, title, description) {
  container.replaceChildren();
  const id = container.id;
  const svg = svgElement('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-labelledby': `${id}-title ${id}-desc`,
    focusable: 'false',
  }, container);
  const t = svgElement('title', { id: `${id}-title` }, svg);
  t.textContent = title;
  const d = svgElement('desc', { id: `${id}-desc` }, svg);
  d.textContent = description;
  return svg;
}

// The bar chart. model: {title, description, areas: [{code, name, value,
// lower, upper, comparatorValue, significance, colour, label, statusText}],
// national: {name, value} or null, format(v)}. Areas come sorted.
export function drawBars(container, model) {
  const width = Math.max(280, Math.floor(container.clientWidth || 640));
  const narrow = width < 560;
  const labelWidth = narrow ? 0 : Math.min(240, Math.floor(width * 0.3));
  const rowHeight = narrow ? 42 : 26;
  const barHeight = 14;
  const top = 30;
  const right = 16;
  const height = top + model.areas.length * rowHeight + 12;
  const svg = chartRoot(container, width, height, model.title, model.description);

  let hi = 0;
  let lo = 0;
  for (const a of model.areas) {
    for (const v of [a.value, a.upper, a.comparatorValue]) if (finite(v)) hi = Math.max(hi, v);
    for (const v of [a.value, a.lower]) if (finite(v)) lo = Math.min(lo, v);
  }
  if (model.national && finite(model.national.value)) hi = Math.max(hi, model.national.value);
  if (!(hi > lo)) hi = lo + 1;
  const ticks = niceTicks(lo, hi * 1.05, narrow ? 4 : 6);
  const domainHi = Math.max(hi * 1.05, ticks[ticks.length - 1]);
  const x = linear(lo, domainHi, labelWidth + 4, width - right);

  const grid = svgElement('g', { class: 'grid axis', 'aria-hidden': 'true' }, svg);
  for (const t of ticks) {
    svgElement('line', { x1: x(t), x2: x(t), y1: top - 6, y2: height - 8 }, grid);
    text(grid, x(t), top - 12, model.format(t), { 'text-anchor': 'middle' });
  }

  const rows = svgElement('g', { class: 'rows' }, svg);
  model.areas.forEach((a, i) => {
    const y0 = top + i * rowHeight;
    const barY = narrow ? y0 + 20 : y0 + (rowHeight - barHeight) / 2;
    const g = svgElement('g', { class: 'area', 'data-code': a.code }, rows);
    svgElement('title', {}, g).textContent = a.label;
    if (narrow) {
      text(g, labelWidth + 4, y0 + 14, a.name, { class: 'area-label' });
    } else {
      text(g, labelWidth - 6, barY + barHeight - 3, a.name, {
        class: 'area-label', 'text-anchor': 'end',
      });
    }
    if (!finite(a.value)) {
      text(g, x(0) + 4, barY + barHeight - 3, a.statusText, { class: 'not-compared-label' });
      return;
    }
    const x0 = x(Math.min(0, a.value));
    svgElement('rect', {
      class: 'bar',
      x: x0,
      y: barY,
      width: Math.max(0.5, Math.abs(x(a.value) - x(0))),
      height: barHeight,
      fill: a.colour,
      'data-code': a.code,
      'data-value': a.value,
      'data-significance': a.significance,
    }, g);
    if (finite(a.lower) && finite(a.upper)) {
      const cy = barY + barHeight / 2;
      svgElement('line', { class: 'ci', x1: x(a.lower), x2: x(a.upper), y1: cy, y2: cy }, g);
      for (const v of [a.lower, a.upper]) {
        svgElement('line', { class: 'ci', x1: x(v), x2: x(v), y1: cy - 5, y2: cy + 5 }, g);
      }
    }
    if (finite(a.comparatorValue) && !model.national) {
      svgElement('line', {
        class: 'comparator-tick',
        x1: x(a.comparatorValue), x2: x(a.comparatorValue),
        y1: barY - 3, y2: barY + barHeight + 3,
      }, g);
    }
  });

  if (model.national && finite(model.national.value)) {
    const cx = x(model.national.value);
    svgElement('line', {
      class: 'comparator-line', x1: cx, x2: cx, y1: top - 4, y2: height - 8,
    }, svg);
    const label = text(svg, cx + 4, height - 2, `${model.national.name} ${model.format(model.national.value)}`, {
      class: 'axis-label', 'font-size': 12,
    });
    if (cx > width * 0.7) {
      label.setAttribute('text-anchor', 'end');
      label.setAttribute('x', String(cx - 4));
    }
  }
  return svg;
}

// A path through the points with finite coordinates, in order.
function pathThrough(points) {
  let d = '';
  let pen = false;
  for (const [px, py] of points) {
    if (!finite(px) || !finite(py)) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${px.toFixed(2)},${py.toFixed(2)}`;
    pen = true;
  }
  return d;
}

// The funnel plot. model: {title, description, xLabel, yLabel, centre,
// centreName, curve: [[x, lower95, upper95, lower998, upper998], ...],
// points: [{code, name, x, value, colour, significance, label}], format(v),
// formatX(v)}.
export function drawFunnel(container, model) {
  const width = Math.max(280, Math.floor(container.clientWidth || 640));
  const narrow = width < 560;
  const height = narrow ? 300 : 380;
  const margin = { top: 16, right: 16, bottom: 46, left: narrow ? 52 : 64 };
  const svg = chartRoot(container, width, height, model.title, model.description);

  const xs = model.points.map((p) => p.x).filter(finite);
  const maxX = Math.max(...xs, 1);
  const minX = Math.min(...xs, maxX);
  const xTicks = niceTicks(0, maxX * 1.08, narrow ? 3 : 5);
  const domainX = Math.max(maxX * 1.08, xTicks[xTicks.length - 1]);
  let yLo = model.centre;
  let yHi = model.centre;
  for (const p of model.points) {
    if (finite(p.value)) {
      yLo = Math.min(yLo, p.value);
      yHi = Math.max(yHi, p.value);
    }
  }
  for (const c of model.curve) {
    if (!(c[0] >= minX * 0.5 && c[0] <= domainX)) continue;
    for (const v of [c[3], c[4]]) {
      if (finite(v)) {
        yLo = Math.min(yLo, v);
        yHi = Math.max(yHi, v);
      }
    }
  }
  const pad = (yHi - yLo) * 0.06 || Math.abs(yHi) * 0.1 || 1;
  yLo = Math.max(0, yLo - pad);
  yHi += pad;
  const yTicks = niceTicks(yLo, yHi, 5);
  const x = linear(0, domainX, margin.left, width - margin.right);
  const y = linear(yLo, yHi, height - margin.bottom, margin.top);

  const axes = svgElement('g', { class: 'axis', 'aria-hidden': 'true' }, svg);
  for (const t of yTicks) {
    svgElement('line', { x1: margin.left, x2: width - margin.right, y1: y(t), y2: y(t), class: 'grid' }, axes);
    text(axes, margin.left - 6, y(t) + 4, model.format(t), { 'text-anchor': 'end' });
  }
  for (const t of xTicks) {
    svgElement('line', { x1: x(t), x2: x(t), y1: height - margin.bottom, y2: height - margin.bottom + 5 }, axes);
    text(axes, x(t), height - margin.bottom + 18, model.formatX(t), { 'text-anchor': 'middle' });
  }
  svgElement('line', {
    x1: margin.left, x2: width - margin.right,
    y1: height - margin.bottom, y2: height - margin.bottom,
  }, axes);
  text(axes, (margin.left + width - margin.right) / 2, height - 6, model.xLabel, { 'text-anchor': 'middle' });
  text(axes, 12, margin.top + (height - margin.top - margin.bottom) / 2, model.yLabel, {
    'text-anchor': 'middle',
    transform: `rotate(-90 12 ${margin.top + (height - margin.top - margin.bottom) / 2})`,
  });

  const clipId = `funnel-clip-${++clipIds}`;
  const clip = svgElement('clipPath', { id: clipId }, svgElement('defs', {}, svg));
  svgElement('rect', {
    x: margin.left, y: margin.top,
    width: width - margin.left - margin.right, height: height - margin.top - margin.bottom,
  }, clip);
  const plot = svgElement('g', { 'clip-path': `url(#${clipId})` }, svg);
  svgElement('line', {
    class: 'centre', x1: margin.left, x2: width - margin.right,
    y1: y(model.centre), y2: y(model.centre), 'data-value': model.centre,
  }, plot);
  const limits = [
    ['limit limit95 lower', 1, '95% lower limit'],
    ['limit limit95 upper', 2, '95% upper limit'],
    ['limit limit998 lower', 3, '99.8% lower limit'],
    ['limit limit998 upper', 4, '99.8% upper limit'],
  ];
  for (const [cls, column, name] of limits) {
    const inRange = model.curve.filter((c) => c[0] <= domainX * 1.02);
    const path = svgElement('path', {
      class: cls,
      d: pathThrough(inRange.map((c) => [x(c[0]), finite(c[column]) ? y(c[column]) : NaN])),
      'data-points': inRange.filter((c) => finite(c[column])).length,
    }, plot);
    svgElement('title', {}, path).textContent = name;
  }
  const points = svgElement('g', { class: 'points' }, svg);
  for (const p of model.points) {
    if (!finite(p.x) || !finite(p.value)) continue;
    const circle = svgElement('circle', {
      class: 'point', cx: x(p.x), cy: y(p.value), r: 5, fill: p.colour,
      'data-code': p.code, 'data-value': p.value, 'data-significance': p.significance,
    }, points);
    svgElement('title', {}, circle).textContent = p.label;
  }
  return svg;
}
