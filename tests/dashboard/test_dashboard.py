#!/usr/bin/python3
"""The dashboard page (web/, served by carecountd's HTTP listener) in
headless Chromium, checked against the server's own JSON replies.

  test_dashboard.py --port HTTP_PORT --token-file F --manifest MANIFEST --out DIR

tests/dashboard/run.sh starts the server. This file checks the static files
over HTTP (types, the Content-Security-Policy, 404s, no token needed), then
drives the page with the keyboard and the DevTools protocol (cdp.py): a bad
token shows an error; the dashboard token, entered by keyboard, connects; the
bars drawn are the rows of the reply (values, sort order, significance
colours in both palettes and polarities), the planted ICB is flagged
significantly higher, suppressed rows are marked in the table and the chart
and drawn as no bar, the funnel plot has its four limit lines and centre
line, the disclosure note names the policy version, a parent comparison has
per-area comparator marks; a narrow window has no sideways scroll. Saves
screenshots in DIR. Exits non-zero on the first failed check.
"""
import argparse
import http.client
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser  # noqa: E402

# The colours docs/dashboard.md specifies (Fingertips' and the colour-blind
# safe alternative), written here again so that the page is checked against
# the document, not against itself.
STANDARD = {"better": "#92D050", "similar": "#FFC000", "worse": "#C00000",
            "higher": "#BED2FF", "lower": "#5555E6", "not_compared": "#FFFFFF"}
COLOURBLIND = {"better": "#0077BB", "similar": "#FFC000", "worse": "#CC3311",
               "higher": "#BED2FF", "lower": "#5555E6", "not_compared": "#FFFFFF"}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

checks = 0


def check(condition, message):
    global checks
    checks += 1
    if not condition:
        raise AssertionError(message)


def significance(comparison, polarity):
    """What the page should call a comparison, by the polarity chosen."""
    if comparison == "significantly higher":
        return {"none": "higher", "high_bad": "worse", "high_good": "better"}[polarity]
    if comparison == "significantly lower":
        return {"none": "lower", "high_bad": "better", "high_good": "worse"}[polarity]
    return "similar" if comparison == "similar" else "not_compared"


# ---- HTTP ----------------------------------------------------------------

def http_get(port, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def raw_get(port, target):
    """A request line sent as it is (no client normalises the path)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def api(port, token, op, fields):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", f"/v1/{op}", body=json.dumps(fields), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    reply = json.loads(response.read())
    conn.close()
    return response.status, reply


def check_static_files(port):
    response, _ = http_get(port, "/")
    check(response.status == 302 and response.getheader("Location") == "/dashboard/",
          f"/ redirects to the page: {response.status} {response.getheader('Location')}")
    types = {"/dashboard/": "text/html; charset=utf-8",
             "/dashboard/dashboard.js": "text/javascript; charset=utf-8",
             "/dashboard/charts.js": "text/javascript; charset=utf-8",
             "/dashboard/dashboard.css": "text/css; charset=utf-8",
             "/dashboard/favicon.svg": "image/svg+xml"}
    for path, content_type in types.items():
        # no Authorization header: the files need no token
        response, body = http_get(port, path)
        check(response.status == 200, f"{path}: {response.status}")
        check(response.getheader("Content-Type") == content_type,
              f"{path}: Content-Type {response.getheader('Content-Type')}")
        check(response.getheader("Content-Security-Policy") == CSP, f"{path}: CSP")
        check(response.getheader("X-Content-Type-Options") == "nosniff", f"{path}: nosniff")
        check(len(body) == int(response.getheader("Content-Length")) and body, f"{path}: body")
    for target in ("/dashboard/../CMakeLists.txt", "/dashboard/%2e%2e/CMakeLists.txt",
                   "/dashboard/..%2f..%2fetc%2fpasswd", "/dashboard//etc/passwd",
                   "/dashboard/nope.html", "/etc/passwd"):
        check(raw_get(port, target) == 404, f"{target} is 404")
    response, _ = http_get(port, "/dashboard/index.html", method="POST")
    check(response.status == 405 and response.getheader("Allow") == "GET, HEAD", "POST is 405")


# ---- the page ------------------------------------------------------------

def page_bars(browser):
    return browser.evaluate("""[...document.querySelectorAll('#bars rect.bar')].map(r => ({
        code: r.dataset.code, value: Number(r.dataset.value), significance: r.dataset.significance,
        fill: r.getAttribute('fill'), width: Number(r.getAttribute('width')),
        y: Number(r.getAttribute('y'))}))""")


def wait_for_shown(browser, name):
    """Waits until the page shows the saved comparison called name."""
    browser.wait_for(
        f"document.getElementById('summary').textContent.includes('saved comparison {name}.')"
        " && document.querySelectorAll('#bars g.area').length > 0", what=f"{name} to be shown")


def check_bars(browser, comparison, polarity, palette, what):
    rows = [r for r in comparison["rows"] if r["level"] == comparison["level"]]
    with_value = [r for r in rows if r["value"] is not None]
    bars = page_bars(browser)
    check(len(bars) == len(with_value), f"{what}: {len(bars)} bars for {len(with_value)} values")
    by_code = {r["code"]: r for r in rows}
    check({b["code"] for b in bars} == {r["code"] for r in with_value}, f"{what}: the areas")
    scale = max(b["width"] for b in bars) / max(r["value"] for r in with_value)
    for b in bars:
        row = by_code[b["code"]]
        check(b["value"] == row["value"], f"{what}: {b['code']} drawn as {b['value']}, sent {row['value']}")
        want = significance(row["comparison95"], polarity)
        check(b["significance"] == want, f"{what}: {b['code']} is {b['significance']}, not {want}")
        check(b["fill"].upper() == palette[want].upper(),
              f"{what}: {b['code']} coloured {b['fill']}, not {palette[want]}")
        check(abs(b["width"] - row["value"] * scale) < 0.75,
              f"{what}: {b['code']}'s bar is not to scale")
    ordered = sorted(bars, key=lambda b: b["y"])
    check(all(ordered[i]["value"] >= ordered[i + 1]["value"] for i in range(len(ordered) - 1)),
          f"{what}: bars sorted by value, highest first")
    # areas without a value: drawn as a note, never as a bar
    for r in rows:
        if r["value"] is None:
            label = browser.evaluate(
                f"(() => {{ const g = document.querySelector('#bars g.area[data-code=\"{r['code']}\"]');"
                " return g && !g.querySelector('rect') && g.querySelector('.not-compared-label')"
                " ? g.querySelector('.not-compared-label').textContent : null; })()")
            check(label and "not compared" in label, f"{what}: {r['code']} marked not compared")
    return bars


def check_table(browser, comparison, what):
    rows = [r for r in comparison["rows"] if r["level"] == comparison["level"]]
    table = browser.evaluate("""[...document.querySelectorAll('#area-rows tr')].map(tr => ({
        code: tr.dataset.code, status: tr.dataset.status, text: tr.textContent,
        noise: (tr.querySelector('td[data-col=noise]') || {}).textContent,
        notCompared: tr.classList.contains('not-compared')}))""")
    check(len(table) == len(rows), f"{what}: {len(table)} table rows for {len(rows)} areas")
    by_code = {r["code"]: r for r in rows}
    for t in table:
        row = by_code[t["code"]]
        check(t["status"] == row["status"], f"{what}: {t['code']} status")
        check(t["notCompared"] == (row["status"] != "ok"), f"{what}: {t['code']} marking")
        has_noise = bool(row.get("ci95_noise")) and row["ci95_noise"][0] is not None
        check(t["noise"] is not None and (t["noise"] != "–") == has_noise,
              f"{what}: {t['code']} shows its interval with disclosure noise: {t['noise']}")
        if row["status"] == "suppressed":
            check("suppressed" in t["text"] and "not compared" in t["text"],
                  f"{what}: {t['code']} says suppressed and not compared: {t['text']}")
    others = browser.evaluate("[...document.querySelectorAll('#comparator-rows tr')].map(tr => tr.dataset.code)")
    check("E92000001" in others, f"{what}: England is in the table")
    return table


def check_funnel(browser, comparison, what):
    funnel = comparison["funnel"]
    check(funnel and len(funnel["points"]) > 10, f"{what}: the reply has a funnel curve")
    lines = browser.evaluate("""[...document.querySelectorAll('#funnel path.limit')].map(p => ({
        cls: p.getAttribute('class'), points: Number(p.dataset.points), d: p.getAttribute('d')}))""")
    classes = sorted(line["cls"] for line in lines)
    check(classes == sorted(["limit limit95 lower", "limit limit95 upper",
                             "limit limit998 lower", "limit limit998 upper"]),
          f"{what}: the four limit lines: {classes}")
    for line in lines:
        check(line["points"] >= 10 and line["d"].count("L") >= 9, f"{what}: {line['cls']} is drawn")
    centre = browser.evaluate("Number(document.querySelector('#funnel line.centre').dataset.value)")
    check(centre == funnel["value"], f"{what}: the centre line is England's value")
    points = browser.evaluate("document.querySelectorAll('#funnel circle.point').length")
    plotted = [r for r in comparison["rows"]
               if r["level"] == comparison["level"] and r["value"] is not None and r["funnel_x"] is not None]
    check(points == len(plotted), f"{what}: {points} funnel points for {len(plotted)} areas")
    label = browser.evaluate("document.querySelector('#funnel svg').getAttribute('role')")
    check(label == "img", f"{what}: the funnel is an image to a screen reader")


def choose(browser, select_id, value):
    browser.evaluate(f"""(() => {{ const s = document.getElementById('{select_id}');
        s.value = '{value}'; s.dispatchEvent(new Event('change')); }})()""")


def tab_to(browser, element_id, limit=20):
    """Presses Tab until element_id has the focus; returns the ids passed."""
    passed = []
    for _ in range(limit):
        browser.press("Tab")
        now = browser.active_id()
        passed.append(now)
        if now == element_id:
            return passed
    raise AssertionError(f"Tab never reached #{element_id}: {passed}")


def run(args):
    token = open(args.token_file).read().strip()
    manifest = json.load(open(args.manifest))
    planted = next(e for e in manifest["planted_effects"] if e["area_level"] == "icb")
    check_static_files(args.port)

    names = ["diabetes_by_icb", "diabetes_by_region", "diabetes_by_icb_vs_region",
             "diabetes_admissions_by_icb"]
    replies = {}
    for name in names:
        status, reply = api(args.port, token, "saved", {"name": name})
        check(status == 200 and reply["ok"], f"saved {name}: {status} {reply}")
        replies[name] = reply
    by_icb = replies["diabetes_by_icb"]["comparison"]
    planted_row = next(r for r in by_icb["rows"] if r["code"] == planted["area_code"])
    check(planted_row["comparison95"] == "significantly higher",
          f"the server flags the planted ICB: {planted_row['comparison95']}")
    admissions = replies["diabetes_admissions_by_icb"]["comparison"]
    n_suppressed = sum(1 for r in admissions["rows"] if r["status"] == "suppressed")
    check(n_suppressed > 0, "the admissions comparison has suppressed areas to show")

    browser = Browser()
    try:
        browser.open_page()
        browser.viewport(1200, 900)
        browser.navigate(f"http://127.0.0.1:{args.port}/")
        check(browser.evaluate("location.pathname") == "/dashboard/", "redirected to /dashboard/")
        check(browser.evaluate("document.title").startswith("carecount"), "the page's title")

        # the keyboard path: skip link, then the token field
        passed = tab_to(browser, "token")
        check(len(passed) == 2, f"the token field is the second stop after the skip link: {passed}")

        # a bad token: an error, nothing shown, nothing kept
        browser.type_text("cc1_not_a_token_at_all")
        browser.press("Enter")
        browser.wait_for("!document.getElementById('error').hidden", what="the bad token's error")
        error = browser.evaluate("document.getElementById('error').textContent")
        check("AUTH" in error and "token" in error, f"the error says the token was refused: {error}")
        check(browser.evaluate("document.getElementById('choose').hidden"), "no choice after a bad token")
        check(browser.evaluate("sessionStorage.length") == 0, "a bad token is not kept")
        check(browser.active_id() == "token", "the focus goes back to the token field")

        # the dashboard token, typed and sent with Enter
        browser.type_text(token)
        browser.press("Enter")
        wait_for_shown(browser, "diabetes_by_region")
        check(token not in browser.evaluate("location.href"), "the token is not in the URL")
        check(browser.evaluate("document.getElementById('token').value") == "", "the field is cleared")
        check(browser.evaluate("sessionStorage.getItem('carecount.dashboard.token')") == token,
              "the token is kept in sessionStorage")
        check(browser.evaluate("localStorage.length") == 0, "nothing in localStorage")
        check(token not in browser.evaluate("document.documentElement.outerHTML"), "the token is not in the page")
        check_bars(browser, replies["diabetes_by_region"]["comparison"], "none", STANDARD, "by region")
        indicators = browser.evaluate("[...document.getElementById('indicator').options].map(o => o.textContent)")
        check(indicators == ["Diabetes", "Diabetes admissions", "Standardised admissions"],
              f"saved variants grouped: {indicators}")
        levels = browser.evaluate("[...document.getElementById('level').options].map(o => o.value)")
        check(levels == ["region", "icb"], f"the levels of the indicator: {levels}")

        # the keyboard picks the ICB level
        passed = tab_to(browser, "level")
        check("indicator" in passed, f"the indicator comes before the level: {passed}")
        browser.press("ArrowDown")
        wait_for_shown(browser, "diabetes_by_icb")
        comparators = browser.evaluate("[...document.getElementById('comparator').options].map(o => o.value)")
        check(comparators == ["national", "parent"], f"England or the parent area: {comparators}")
        bars = check_bars(browser, by_icb, "none", STANDARD, "by ICB")
        planted_bar = next(b for b in bars if b["code"] == planted["area_code"])
        check(planted_bar["significance"] == "higher" and planted_bar["fill"].upper() == "#BED2FF",
              f"the planted ICB is drawn significantly higher: {planted_bar}")
        legend = browser.evaluate("document.getElementById('legend').textContent")
        check("significantly higher" in legend and "not compared" in legend, f"legend: {legend}")
        check_table(browser, by_icb, "by ICB")
        check_funnel(browser, by_icb, "by ICB")
        note = browser.evaluate("document.querySelector('#disclosure dd[data-key=version]').textContent")
        check(note == by_icb["policy"]["version"], f"the note names the policy version: {note}")
        aria = browser.evaluate("""(() => { const s = document.querySelector('#bars svg');
            const ids = s.getAttribute('aria-labelledby').split(' ');
            return s.getAttribute('role') + '|' + ids.map(i => document.getElementById(i).textContent).join('|'); })()""")
        check(aria.startswith("img|") and "bar chart" in aria and "areas compared" in aria,
              f"the bar chart has a title and a description: {aria}")
        browser.screenshot(os.path.join(args.out, "dashboard-icb.png"))

        # higher is worse, by keyboard; then the colour-blind-safe colours
        tab_to(browser, "polarity")
        browser.press("ArrowDown")
        browser.wait_for(f"document.querySelector('#bars rect[data-code=\"{planted['area_code']}\"]')"
                         ".dataset.significance === 'worse'", what="higher as worse")
        check_bars(browser, by_icb, "high_bad", STANDARD, "higher is worse")
        tab_to(browser, "colourblind")
        browser.press("Space")
        browser.wait_for("document.getElementById('colourblind').checked", what="the checkbox")
        bars = check_bars(browser, by_icb, "high_bad", COLOURBLIND, "colour-blind-safe")
        planted_bar = next(b for b in bars if b["code"] == planted["area_code"])
        check(planted_bar["fill"].upper() == COLOURBLIND["worse"], "the planted ICB in the safe palette")
        browser.screenshot(os.path.join(args.out, "dashboard-icb-colourblind.png"))

        # against the parent area: per-area comparator marks, no funnel
        choose(browser, "comparator", "parent")
        wait_for_shown(browser, "diabetes_by_icb_vs_region")
        vs_region = replies["diabetes_by_icb_vs_region"]["comparison"]
        check_bars(browser, vs_region, "high_bad", COLOURBLIND, "vs region")
        ticks = browser.evaluate("document.querySelectorAll('#bars line.comparator-tick').length")
        with_comparator = [r for r in vs_region["rows"] if r["level"] == "icb"
                           and r["value"] is not None and r["comparator_value"] is not None]
        check(ticks == len(with_comparator), f"{ticks} parent marks for {len(with_comparator)} areas")
        check(browser.evaluate("!!document.querySelector('#funnel p.note')"), "no funnel against parents")

        # an indicator with suppressed areas, in the standard colours
        browser.press("Space")  # the focus is still on the checkbox
        browser.wait_for("!document.getElementById('colourblind').checked", what="the checkbox off")
        choose(browser, "indicator", browser.evaluate(
            "[...document.getElementById('indicator').options].find(o => o.textContent === 'Diabetes admissions').value"))
        wait_for_shown(browser, "diabetes_admissions_by_icb")
        check_bars(browser, admissions, "high_bad", STANDARD, "admissions")
        table = check_table(browser, admissions, "admissions")
        check(sum(1 for t in table if t["status"] == "suppressed") == n_suppressed,
              "every suppressed area is marked in the table")
        check_funnel(browser, admissions, "admissions")
        counts = browser.evaluate("document.querySelector('#disclosure dd[data-key=counts]').textContent")
        check(f"{admissions['counts']['suppressed']} suppressed" in counts, f"the note's counts: {counts}")
        threshold = browser.evaluate("document.querySelector('#disclosure dd[data-key=threshold]').textContent")
        check(str(admissions["policy"]["threshold"] - 1) in threshold, f"the note's threshold: {threshold}")
        browser.screenshot(os.path.join(args.out, "dashboard-suppressed.png"))

        # the funnel's points are the bars' areas, in the bars' colours
        fills = browser.evaluate("""[...document.querySelectorAll('#funnel circle.point')].map(c =>
            [c.dataset.code, c.getAttribute('fill'), document.querySelector(
              `#bars rect.bar[data-code="${c.dataset.code}"]`).getAttribute('fill')])""")
        check(fills and all(point == bar for _, point, bar in fills), "funnel points coloured as their bars")

        # a comparison the disclosure policy refuses at this data size: the
        # error says so, and nothing of the comparison before stays shown
        choose(browser, "indicator", browser.evaluate(
            "[...document.getElementById('indicator').options].find(o => o.textContent === 'Standardised admissions').value"))
        browser.wait_for("!document.getElementById('error').hidden", what="the refusal")
        error = browser.evaluate("document.getElementById('error').textContent")
        check("REFUSED" in error, f"the refusal is shown: {error}")
        check(browser.evaluate("document.getElementById('results').hidden"), "no stale chart under a refusal")
        choose(browser, "indicator", browser.evaluate(
            "[...document.getElementById('indicator').options].find(o => o.textContent === 'Diabetes admissions').value"))
        wait_for_shown(browser, "diabetes_admissions_by_icb")
        check(browser.evaluate("document.getElementById('error').hidden"), "the error goes with a new choice")

        # a narrow window: the charts redraw to fit and nothing scrolls sideways
        browser.viewport(360, 740)
        browser.wait_for("Number(document.querySelector('#bars svg').getAttribute('width')) <= 360",
                         what="the bar chart to fit a narrow window")
        check_bars(browser, admissions, "high_bad", STANDARD, "narrow")
        overflow = browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        check(overflow <= 1, f"no sideways scroll in a narrow window ({overflow} px)")
        browser.screenshot(os.path.join(args.out, "dashboard-narrow.png"))

        # the token is forgotten on request
        browser.evaluate("document.getElementById('forget-button').click()")
        browser.wait_for("document.getElementById('choose').hidden", what="the token to be forgotten")
        check(browser.evaluate("sessionStorage.length") == 0, "forgetting empties sessionStorage")

        check(not browser.exceptions, f"no script error: {browser.exceptions}")
        refused = [text for kind, text in browser.console
                   if "Content Security Policy" in text or "Refused to" in text]
        check(not refused, f"nothing refused by the CSP: {refused}")
        errors = [(kind, text) for kind, text in browser.console
                  if kind in ("error", "log-error-javascript") or
                  (kind.startswith("log-error") and "401" not in text and "422" not in text)]
        check(not errors, f"no error but the bad token's 401 and the refusal's 422: {errors}")
    finally:
        browser.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        run(args)
    except AssertionError as e:
        print(f"dashboard: FAILED after {checks} checks: {e}", file=sys.stderr)
        return 1
    print(f"dashboard: {checks} checks passed; screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
