// dashboard.js: the carecount dashboard page. It asks the server that served
// it (same origin: no CORS) for the operator-approved saved comparisons
// (POST /v1/saved_list) and runs one (POST /v1/saved), with the dashboard
// token as a bearer token; then draws what the reply says: the bar chart,
// the funnel plot, the table and the note of the disclosure control applied.
//
// Must never: put the token anywhere but sessionStorage and the
// Authorization header (not the URL, not localStorage, not the page);
// compute a figure the server did not send (colours and order only).

import { drawBars, drawFunnel } from './charts.js';

const TOKEN_KEY = 'carecount.dashboard.token';

// Fingertips' colours: better, similar, worse against the comparator; and
// for indicators where higher is neither better nor worse, its blue scheme
// (lighter blue higher, darker blue lower). The colour-blind-safe palette
// swaps green and red for blue and vermilion (different in hue and in
// lightness to every kind of colour vision); the blue scheme is already
// safe. Not compared is white in both. docs/dashboard.md lists them.
export const PALETTES = {
  standard: {
    better: '#92D050', similar: '#FFC000', worse: '#C00000',
    higher: '#BED2FF', lower: '#5555E6', not_compared: '#FFFFFF',
  },
  colourblind: {
    better: '#0077BB', similar: '#FFC000', worse: '#CC3311',
    higher: '#BED2FF', lower: '#5555E6', not_compared: '#FFFFFF',
  },
};

// Long official names, shortened in the charts only (the table has them whole).
function shortName(name) {
  return name.replace(/ Integrated Care Board$/, ' ICB');
}

const LEGEND_TEXT = {
  better: 'significantly better', worse: 'significantly worse',
  higher: 'significantly higher', lower: 'significantly lower',
  similar: 'similar', not_compared: 'not compared',
};

function comparedPhrase(significance, comparatorName) {
  if (significance === 'similar') return `similar to ${comparatorName}`;
  if (significance === 'not_compared') return 'not compared';
  return `${LEGEND_TEXT[significance]} than ${comparatorName}`;
}

const SIGNIFICANCE_TEXT = {
  better: 'better', worse: 'worse', higher: 'higher', lower: 'lower',
  similar: 'similar', not_compared: 'not compared',
};

const STATUS_TEXT = {
  suppressed: 'not compared: a count or denominator was suppressed',
  no_denominator: 'not compared: no denominator',
  too_few_events: 'not compared: fewer than 10 events',
  inconsistent: 'not compared: inconsistent counts',
};

const LEVEL_NAMES = { region: 'Region', icb: 'ICB', lad: 'Local authority district' };
const LEVEL_ORDER = ['region', 'icb', 'lad'];
const PARENT_NAMES = { region: 'England', icb: 'its region', lad: 'its ICB' };
const METHOD_NAMES = {
  proportion: 'proportion', crude_rate: 'crude rate',
  dsr: 'directly standardised rate', isr: 'indirectly standardised ratio',
};
const FUNNEL_X_NAMES = {
  denominator: 'Denominator (population)',
  expected: 'Expected events',
  derived_population: 'Population at which the events give the rate as a crude rate',
};

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  groups: [],     // [{key, label, entries: [{name, level, comparator, method}]}]
  reply: null,    // the last comparison reply
  entry: null,    // the saved comparison shown
  sequence: 0,    // requests answered out of turn are dropped
};

// ---- the server ----------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(op, fields) {
  let response;
  try {
    response = await fetch(`/v1/${op}`, {
      method: 'POST',
      cache: 'no-store',
      credentials: 'omit',
      headers: {
        Authorization: `Bearer ${state.token}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify(fields || {}),
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', 'the server could not be reached');
  }
  let reply = null;
  try {
    reply = await response.json();
  } catch (e) {
    throw new ApiError(response.status, 'PARSE', 'the server sent a reply that is not JSON');
  }
  if (!reply || reply.ok !== true) {
    const error = (reply && reply.error) || {};
    throw new ApiError(response.status, error.code || 'INTERNAL', error.message || 'request failed');
  }
  return reply;
}

function explain(error) {
  switch (error.code) {
    case 'AUTH':
      return 'The server did not accept this token (AUTH). Check that you copied the whole '
        + 'dashboard token, and ask your operator for a new one if it has expired or was revoked.';
    case 'DENIED':
      return 'This token\'s account may not run saved comparisons (DENIED): use a token of a '
        + 'dashboard, planner or researcher account.';
    case 'BUSY':
      return 'The server is busy or has seen too many failed tokens from here (BUSY): wait a '
        + 'minute and try again.';
    case 'REFUSED':
      return `The disclosure policy refuses this comparison (REFUSED): ${error.message}.`;
    case 'NETWORK':
      return 'The server could not be reached: is carecountd still running?';
    default:
      return `The server answered ${error.code}: ${error.message}.`;
  }
}

// ---- messages ------------------------------------------------------------

function setStatus(message) {
  $('status').textContent = message;
}

function showError(message) {
  const node = $('error');
  node.textContent = message;
  node.hidden = !message;
}

// ---- the token -----------------------------------------------------------

function rememberToken(token) {
  state.token = token;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch (e) {
    // storage refused (a private window): the token lives in memory only
  }
  $('forget-button').hidden = false;
}

function forgetToken() {
  state.token = null;
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) {
    // nothing stored
  }
  $('token').value = '';
  $('forget-button').hidden = true;
  $('choose').hidden = true;
  $('results').hidden = true;
  state.reply = null;
}

async function connect(token) {
  showError('');
  rememberToken(token);
  setStatus('Connecting…');
  let reply;
  try {
    reply = await call('saved_list');
  } catch (error) {
    forgetToken();
    setStatus('');
    showError(explain(error));
    $('token').focus();
    return;
  }
  state.groups = groupEntries(reply.saved || []);
  if (!state.groups.length) {
    setStatus('');
    showError('The operator has approved no saved comparison for dashboards yet.');
    return;
  }
  $('token').value = '';
  fillIndicators();
  $('choose').hidden = false;
  setStatus(`Connected: ${state.groups.length} indicator${state.groups.length === 1 ? '' : 's'} to choose from.`);
  await show();
}

// ---- the saved comparisons as indicators ---------------------------------

// A name without its level and comparator: "diabetes_by_icb_vs_region" is
// the indicator "diabetes". Variants whose names do not share a stem are
// labelled by their longest common prefix, cut back to a whole word.
function stem(name) {
  return name.replace(/[_-](by|vs)([_-].*)?$/, '');
}

function groupLabel(names) {
  const stems = new Set(names.map(stem));
  if (stems.size === 1) return humanise([...stems][0] || names[0]);
  let prefix = names[0];
  for (const n of names) {
    while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  const words = prefix.split(/[_-]/);
  if (!names.every((n) => n.length === prefix.length || /[_-]/.test(n[prefix.length]))) {
    words.pop();
  }
  while (words.length && ['by', 'vs', 'per', ''].includes(words[words.length - 1])) words.pop();
  return words.length ? humanise(words.join('_')) : humanise(names[0]);
}

function humanise(name) {
  const s = name.replace(/[_-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function groupEntries(saved) {
  const byKey = new Map();
  for (const entry of saved) {
    if (entry.kind !== 'compare') continue;
    const key = entry.indicator || entry.name;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(entry);
  }
  const groups = [...byKey.entries()].map(([key, entries]) => ({
    key,
    label: groupLabel(entries.map((e) => e.name)),
    entries,
  }));
  // two groups of the same label are told apart by a name
  for (const g of groups) {
    if (groups.filter((o) => o.label === g.label).length > 1) g.label += ` (${g.entries[0].name})`;
  }
  return groups.sort((a, b) => a.label.localeCompare(b.label));
}

function option(select, value, label) {
  const node = document.createElement('option');
  node.value = value;
  node.textContent = label;
  select.appendChild(node);
  return node;
}

function currentGroup() {
  return state.groups.find((g) => g.key === $('indicator').value) || state.groups[0];
}

function fillIndicators() {
  const select = $('indicator');
  const previous = select.value;
  select.replaceChildren();
  for (const g of state.groups) option(select, g.key, g.label);
  if (state.groups.some((g) => g.key === previous)) select.value = previous;
  fillLevels();
}

function fillLevels() {
  const group = currentGroup();
  const select = $('level');
  const previous = select.value;
  select.replaceChildren();
  const levels = LEVEL_ORDER.filter((l) => group.entries.some((e) => e.level === l));
  for (const l of levels) option(select, l, LEVEL_NAMES[l]);
  if (levels.includes(previous)) select.value = previous;
  select.disabled = levels.length < 2;
  fillComparators();
}

function fillComparators() {
  const group = currentGroup();
  const level = $('level').value;
  const select = $('comparator');
  const previous = select.value;
  select.replaceChildren();
  const entries = group.entries.filter((e) => e.level === level);
  for (const c of ['national', 'parent']) {
    if (!entries.some((e) => e.comparator === c)) continue;
    option(select, c, c === 'national' ? 'England' : `the parent area (${PARENT_NAMES[level]})`);
  }
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  select.disabled = select.options.length < 2;
}

function chosenEntry() {
  const group = currentGroup();
  return group.entries.find((e) => e.level === $('level').value
    && e.comparator === $('comparator').value) || group.entries[0];
}

// ---- showing a comparison ------------------------------------------------

async function show() {
  const entry = chosenEntry();
  const sequence = ++state.sequence;
  setStatus(`Loading ${entry.name}…`);
  showError('');
  let reply;
  try {
    reply = await call('saved', { name: entry.name });
  } catch (error) {
    if (sequence !== state.sequence) return;
    setStatus('');
    showError(explain(error));
    // nothing of the comparison shown before stays under the new choice
    state.reply = null;
    $('results').hidden = true;
    if (error.code === 'AUTH') forgetToken();
    return;
  }
  if (sequence !== state.sequence) return;
  if (reply.kind !== 'compare' || !reply.comparison) {
    showError(`${entry.name} is not a comparison.`);
    return;
  }
  state.reply = reply;
  state.entry = entry;
  render();
  const c = reply.comparison;
  const areas = c.rows.filter((r) => r.level === c.level);
  const compared = areas.filter((r) => r.status === 'ok').length;
  setStatus(`Showing ${currentGroup().label} by ${LEVEL_NAMES[c.level]}: ${areas.length} areas, `
    + `${compared} compared, ${areas.length - compared} not compared.`);
}

function decimals(values) {
  const top = Math.max(...values.filter(Number.isFinite).map(Math.abs), 0);
  if (top >= 1000) return 0;
  if (top >= 1) return 1;
  return 2;
}

function formatter(digits) {
  const f = new Intl.NumberFormat('en-GB', {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
  return (v) => (Number.isFinite(v) ? f.format(v) : '–');
}

const formatCount = (() => {
  const f = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 0 });
  return (v) => (Number.isFinite(v) ? f.format(v) : '–');
})();

function formatAxis(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

// "higher"/"lower" as better/worse, or as they are, by the chosen polarity.
function significanceOf(comparison) {
  const polarity = $('polarity').value;
  if (comparison === 'significantly higher') {
    return { none: 'higher', high_bad: 'worse', high_good: 'better' }[polarity];
  }
  if (comparison === 'significantly lower') {
    return { none: 'lower', high_bad: 'better', high_good: 'worse' }[polarity];
  }
  return comparison === 'similar' ? 'similar' : 'not_compared';
}

function palette() {
  return $('colourblind').checked ? PALETTES.colourblind : PALETTES.standard;
}

function sortAreas(areas) {
  const how = $('sort').value;
  const byName = (a, b) => a.name.localeCompare(b.name);
  const withValue = areas.filter((r) => Number.isFinite(r.value));
  const without = areas.filter((r) => !Number.isFinite(r.value)).sort(byName);
  if (how === 'name') return [...areas].sort(byName);
  withValue.sort((a, b) => (how === 'value_asc' ? a.value - b.value : b.value - a.value)
    || byName(a, b));
  return [...withValue, ...without];
}

function render() {
  const reply = state.reply;
  if (!reply) return;
  const c = reply.comparison;
  const level95 = $('significance').value === '95';
  const ciKey = level95 ? 'ci95' : 'ci998';
  const comparisonKey = level95 ? 'comparison95' : 'comparison998';
  const levelText = level95 ? '95%' : '99.8%';
  const colours = palette();
  const byCode = new Map(c.rows.map((r) => [r.code, r]));
  const national = c.comparator === 'national';
  const england = c.rows.find((r) => r.level === 'nation');
  const digits = decimals(c.rows.map((r) => r.value));
  const format = formatter(digits);
  const group = currentGroup();
  const per = c.method === 'proportion' && c.multiplier === 100 ? '%'
    : ` per ${formatCount(c.multiplier)}`;
  const comparedWith = national ? 'England' : `the parent area (${PARENT_NAMES[c.level]})`;

  const areas = sortAreas(c.rows.filter((r) => r.level === c.level)).map((r) => {
    const significance = r.status === 'ok' ? significanceOf(r[comparisonKey]) : 'not_compared';
    const comparator = byCode.get(r.compared_with);
    const statusText = STATUS_TEXT[r.status] || (r.status === 'ok' ? '' : 'not compared');
    const ci = r[ciKey] || [null, null];
    const label = Number.isFinite(r.value)
      ? `${r.name}: ${format(r.value)}${per} (${levelText} CI ${format(ci[0])} to ${format(ci[1])}), `
        + comparedPhrase(significance, comparator ? comparator.name : 'the comparator')
      : `${r.name}: ${statusText}`;
    return {
      row: r, code: r.code, name: shortName(r.name), value: r.value, lower: ci[0], upper: ci[1],
      comparatorValue: r.comparator_value, significance, colour: colours[significance],
      statusText, label, comparatorName: comparator ? comparator.name : '',
    };
  });

  $('results').hidden = false;
  $('results-heading').textContent = `${group.label} by ${LEVEL_NAMES[c.level]}, compared with ${comparedWith}`;
  $('summary').textContent = `${METHOD_NAMES[c.method] || c.method}${c.method === 'proportion' && c.multiplier === 100 ? ' (%)' : `, per ${formatCount(c.multiplier)}`}; `
    + `data version ${reply.data_version}; saved comparison ${state.entry.name}. `
    + `Colours show significance at ${levelText} against ${comparedWith}.`;
  renderLegend(colours);

  const counts = { better: 0, worse: 0, higher: 0, lower: 0, similar: 0, not_compared: 0 };
  for (const a of areas) counts[a.significance] += 1;
  const tally = Object.entries(counts).filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${SIGNIFICANCE_TEXT[k]}`).join(', ');

  $('bars-caption').textContent = `Value and ${levelText} confidence interval of each area, sorted; `
    + (national ? 'the dashed line is England\'s value. '
      : 'the black tick on each bar is its parent area\'s value. ')
    + 'The table below holds the same figures.';
  drawBars($('bars'), {
    title: `${group.label} by ${LEVEL_NAMES[c.level]}: bar chart`,
    description: `${areas.length} areas compared with ${comparedWith} at ${levelText}: ${tally}. `
      + 'The table of figures below gives every value.',
    areas,
    national: national && england && Number.isFinite(england.value)
      ? { name: england.name, value: england.value } : null,
    format,
  });

  renderFunnel(c, areas, format, comparedWith, per);
  renderTable(c, areas, format, ciKey, comparisonKey, levelText, byCode, per);
  renderDisclosure(reply);
}

function renderLegend(colours) {
  const polarity = $('polarity').value;
  const keys = polarity === 'none' ? ['higher', 'similar', 'lower', 'not_compared']
    : ['better', 'similar', 'worse', 'not_compared'];
  const legend = $('legend');
  legend.replaceChildren();
  for (const k of keys) {
    const li = document.createElement('li');
    li.dataset.significance = k;
    const swatch = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    swatch.setAttribute('width', '18');
    swatch.setAttribute('height', '18');
    swatch.setAttribute('aria-hidden', 'true');
    swatch.classList.add('swatch');
    const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    for (const [a, v] of Object.entries({ width: 18, height: 18, fill: colours[k], stroke: '#0b0c0c' })) {
      rect.setAttribute(a, String(v));
    }
    swatch.appendChild(rect);
    li.appendChild(swatch);
    li.appendChild(document.createTextNode(LEGEND_TEXT[k]));
    legend.appendChild(li);
  }
}

function renderFunnel(c, areas, format, comparedWith, per) {
  const container = $('funnel');
  const f = c.funnel;
  if (!f || !Array.isArray(f.points) || !f.points.length) {
    container.replaceChildren();
    const note = document.createElement('p');
    note.className = 'note';
    note.textContent = c.comparator === 'parent'
      ? 'No funnel plot: a funnel is drawn around one comparator, and this comparison compares '
        + `each area with ${comparedWith}. Choose England as the comparator to see it.`
      : 'No funnel plot: no area has a value to plot, or England has none.';
    container.appendChild(note);
    $('funnel-caption').textContent = 'Funnel plot';
    return;
  }
  const points = areas.map((a) => ({
    code: a.code, name: a.name, x: a.row.funnel_x, value: a.value, colour: a.colour,
    significance: a.significance,
    label: `${a.label}; at ${formatCount(a.row.funnel_x)} on the funnel's axis`,
  }));
  const outside = areas.filter((a) => {
    const lim = a.row.funnel998;
    return Number.isFinite(a.value) && lim
      && ((Number.isFinite(lim[0]) && a.value < lim[0]) || (Number.isFinite(lim[1]) && a.value > lim[1]));
  }).length;
  $('funnel-caption').textContent = `Funnel plot: each area's value against its size; the line across `
    + `is England's value (${format(f.value)}), the dashed lines the 95% and the solid lines the `
    + '99.8% control limits around it.';
  drawFunnel(container, {
    title: 'Funnel plot with 95% and 99.8% control limits',
    description: `${points.filter((p) => Number.isFinite(p.value)).length} areas plotted against `
      + `${FUNNEL_X_NAMES[f.x] || f.x}; ${outside} lie outside the 99.8% limits.`,
    xLabel: FUNNEL_X_NAMES[f.x] || f.x,
    yLabel: per === '%' ? 'Value (%)' : `Value${per}`,
    centre: f.value,
    curve: f.points,
    points,
    format,
    formatX: formatAxis,
  });
}

function cell(tr, content, className, header = false) {
  const node = document.createElement(header ? 'th' : 'td');
  if (header) node.scope = 'row';
  if (className) node.className = className;
  if (content instanceof Node) node.appendChild(content);
  else node.textContent = content;
  tr.appendChild(node);
  return node;
}

function renderTable(c, areas, format, ciKey, comparisonKey, levelText, byCode, per) {
  const head = document.querySelector('#figures thead');
  head.replaceChildren();
  const hr = document.createElement('tr');
  const columns = [
    ['Area', ''], ['Code', ''], [c.method === 'isr' ? 'Observed' : 'Count', 'num'],
    [c.method === 'isr' ? 'Expected' : 'Denominator', 'num'], [`Value${per === '%' ? ' (%)' : ''}`, 'num'],
    [`${levelText} interval`, 'num'], ['95% interval with disclosure noise', 'num'],
    ['Compared with', ''], [`Significance (${levelText})`, ''],
  ];
  for (const [name, cls] of columns) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = name;
    if (cls) th.className = cls;
    hr.appendChild(th);
  }
  head.appendChild(hr);
  $('table-caption').textContent = `${areas.length} areas, in the order of the chart, then the `
    + 'comparators. Counts are released (protected) counts; a dash is a figure not released or '
    + 'not computed. The interval with disclosure noise also allows for the perturbation and '
    + 'rounding of the released counts; significance uses the plain interval, as Fingertips does.';

  const addRow = (body, r, significance, colour) => {
    const tr = document.createElement('tr');
    tr.dataset.code = r.code;
    tr.dataset.status = r.status;
    if (r.status !== 'ok') tr.classList.add('not-compared');
    cell(tr, r.name, '', true);
    cell(tr, r.code);
    const suppressed = r.status === 'suppressed';
    cell(tr, suppressed && r.count == null ? 'suppressed' : formatCount(r.count), 'num');
    const second = c.method === 'isr' ? r.expected : r.denominator;
    cell(tr, suppressed && second == null ? 'suppressed' : (c.method === 'isr' ? format(second) : formatCount(second)), 'num');
    cell(tr, Number.isFinite(r.value) ? format(r.value) : '–', 'num');
    const ci = r[ciKey] || [];
    cell(tr, Number.isFinite(ci[0]) ? `${format(ci[0])} to ${format(ci[1])}` : '–', 'num');
    /* the 95% interval widened by the perturbation and rounding of the
     * released counts (docs/comparisons.md): how sure a small area's
     * figure really is */
    const noise = r.ci95_noise || [];
    const noiseCell = cell(tr, Number.isFinite(noise[0]) ? `${format(noise[0])} to ${format(noise[1])}` : '–', 'num');
    if (noiseCell) noiseCell.dataset.col = 'noise';
    const comparator = byCode.get(r.compared_with);
    cell(tr, comparator ? comparator.name : '–');
    if (significance === null) {
      cell(tr, r.level === 'nation' ? 'comparator' : 'comparator of its areas');
    } else {
      const span = document.createElement('span');
      span.className = 'significance';
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.setAttribute('aria-hidden', 'true');
      swatch.dataset.colour = colour;
      span.appendChild(swatch);
      const words = document.createElement('span');
      words.className = 'marker';
      words.textContent = r.status === 'ok' ? LEGEND_TEXT[significance]
        : (STATUS_TEXT[r.status] || 'not compared');
      span.appendChild(words);
      cell(tr, span).dataset.significance = significance;
    }
    body.appendChild(tr);
    return tr;
  };
  const areaBody = $('area-rows');
  areaBody.replaceChildren();
  for (const a of areas) addRow(areaBody, a.row, a.significance, a.colour);
  const comparatorBody = $('comparator-rows');
  comparatorBody.replaceChildren();
  for (const r of c.rows.filter((row) => row.level !== c.level)) addRow(comparatorBody, r, null, null);
  // the swatches take their colour from a class-free SVG: no inline style
  for (const s of document.querySelectorAll('#figures .swatch')) {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    rect.setAttribute('width', '16');
    rect.setAttribute('height', '16');
    rect.setAttribute('fill', s.dataset.colour);
    svg.appendChild(rect);
    s.appendChild(svg);
  }
}

function renderDisclosure(reply) {
  const c = reply.comparison;
  const p = c.policy || {};
  const n = c.counts || {};
  const body = $('disclosure-body');
  body.replaceChildren();
  const intro = document.createElement('p');
  intro.textContent = 'Every count and denominator behind these figures went through disclosure '
    + 'control before any rate, interval or comparison was computed from it.';
  body.appendChild(intro);
  const dl = document.createElement('dl');
  const item = (term, value, key) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (key) dd.dataset.key = key;
    dl.append(dt, dd);
  };
  item('Policy version', p.version, 'version');
  item('Threshold', `counts from 1 to ${p.threshold - 1} are suppressed${p.zeros_shown ? '; zeros are shown' : ''}`, 'threshold');
  item('Rounding', p.rounding_base > 1 ? `counts are rounded to multiples of ${p.rounding_base}` : 'none', 'rounding');
  item('Perturbation', p.perturbed
    ? `each count is perturbed by at most ±${p.max_noise} (cell key method: the same query always gets the same figure)`
    : 'none', 'perturbation');
  item('Counts released', `${n.cells} counts and denominators: ${n.shown} shown as they are, `
    + `${n.perturbed} perturbed, ${n.rounded} rounded, ${n.suppressed} suppressed`
    + `${n.suppressed_secondary ? ` and ${n.suppressed_secondary} suppressed to protect them` : ''}`, 'counts');
  item('Data version', String(reply.data_version), 'data_version');
  body.appendChild(dl);
}

// ---- wiring --------------------------------------------------------------

function init() {
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (!token) {
      showError('Enter the dashboard token first.');
      $('token').focus();
      return;
    }
    connect(token);
  });
  $('forget-button').addEventListener('click', () => {
    forgetToken();
    setStatus('The token is forgotten.');
    $('token').focus();
  });
  $('indicator').addEventListener('change', () => { fillLevels(); show(); });
  $('level').addEventListener('change', () => { fillComparators(); show(); });
  $('comparator').addEventListener('change', () => show());
  for (const id of ['significance', 'polarity', 'sort', 'colourblind']) {
    $(id).addEventListener('change', () => render());
  }
  let width = 0;
  const observer = new ResizeObserver(() => {
    const now = $('bars').clientWidth;
    if (now !== width) {
      width = now;
      render();
    }
  });
  observer.observe($('bars'));

  let saved = null;
  try {
    saved = sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    saved = null;
  }
  if (saved) connect(saved);
}

init();
