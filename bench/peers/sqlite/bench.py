#!/usr/bin/env python3
"""bench/peers/sqlite/bench.py: the SQLite peer of the carecount benchmark.

    python3 bench.py --csv DIR --db FILE [--runs R]

Loads the CSV files that `bench_queries --export DIR` wrote (persons, records
and codes of the opted-in persons only) into SQLite tables in FILE (replaced),
with the indexes a careful SQL user would add, then runs the four benchmark
queries of issue 4, R times each, and prints for each one
    RESULT sqlite qN median_ms=X min_ms=Y total=T cells=C
in the format of bench_queries, so bench/run.sh can pair them. Load and
indexing time are printed separately. Python's standard library only.

Then (unless --layout exported) it builds in the same file the layout a
SQLite user who cares about speed would choose (the "fair" layout, see
FAIR_BUILD): integer ids for codes in (system, text) order and for areas,
dates as integers YYYYMMDD, one wide postings table and one wide records
table each with a covering index, so every query reads one index range and
never the table. Its build time is printed separately and the same four
queries on it are printed as RESULT sqlite-fair lines. The code ids are
looked up once per query before its timed runs, as the engine binds a
query's codes once.

Must never: write anywhere but FILE.
"""
import argparse
import csv
import os
import sqlite3
import statistics
import time

YEAR_FROM, YEAR_TO = "'2024-01-01'", "'2024-12-31'"
AGE = ("(CAST(strftime('%Y', r.date) AS INT) - CAST(strftime('%Y', p.dob) AS INT) - "
       "(strftime('%m-%d', r.date) < strftime('%m-%d', p.dob)))")

# The same queries as bench/bench_queries.c; rows end with a count. GLOB
# rather than LIKE so that SQLite can use the index on codes(system, text).
QUERIES = {
    "q1": ["SELECT p.region, COUNT(DISTINCT p.id) FROM codes c JOIN records r ON r.id = c.record"
           " JOIN persons p ON p.id = r.person WHERE c.system = 1 AND c.text = '44054006'"
           " AND p.region IS NOT NULL GROUP BY 1"],
    "q2": [f"SELECT p.lad, MIN({AGE} / 5, 18), p.sex, COUNT(*) FROM records r"
           f" JOIN persons p ON p.id = r.person WHERE r.setting = 2 AND r.date BETWEEN"
           f" {YEAR_FROM} AND {YEAR_TO} AND p.lad IS NOT NULL AND p.sex IN (1, 2)"
           f" AND {AGE} >= 0 GROUP BY 1, 2, 3"],
    "q3": [f"SELECT p.icb, COUNT(DISTINCT p.id) FROM codes c JOIN records r ON r.id = c.record"
           f" JOIN persons p ON p.id = r.person WHERE c.system = 2 AND c.text GLOB 'E11*'"
           f" AND r.setting = 2 AND r.date BETWEEN {YEAR_FROM} AND {YEAR_TO}"
           f" AND p.icb IS NOT NULL GROUP BY 1",
           "SELECT icb, COUNT(*) FROM persons WHERE practice IS NOT NULL AND icb IS NOT NULL"
           " GROUP BY 1"],
    "q4": ["SELECT p.region, COUNT(*) FROM persons p WHERE p.region IS NOT NULL"
           " AND p.id IN (SELECT r.person FROM codes c JOIN records r ON r.id = c.record"
           "   WHERE c.system = 1 AND c.text = '44054006' AND r.setting = 1)"
           " AND p.id IN (SELECT r.person FROM codes c JOIN records r ON r.id = c.record"
           "   WHERE c.system = 2 AND c.text GLOB 'E11*' AND r.setting = 2)"
           " GROUP BY 1"],
}


# The fair layout (see the docstring). Ages are (date - dob) // 10000 on
# YYYYMMDD integers, which equals AGE above; "age >= 0" is date >= dob.
FAIR_BUILD = """
CREATE TABLE code_dict(id INTEGER PRIMARY KEY, system INT, text TEXT);
INSERT INTO code_dict(id, system, text)
  SELECT row_number() OVER (ORDER BY system, text) - 1, system, text
  FROM (SELECT DISTINCT system, text FROM codes);
CREATE UNIQUE INDEX code_dict_text ON code_dict(system, text, id);
CREATE TABLE region_dict(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
INSERT INTO region_dict(code) SELECT DISTINCT region FROM persons WHERE region IS NOT NULL ORDER BY 1;
CREATE TABLE icb_dict(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
INSERT INTO icb_dict(code) SELECT DISTINCT icb FROM persons WHERE icb IS NOT NULL ORDER BY 1;
CREATE TABLE lad_dict(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
INSERT INTO lad_dict(code) SELECT DISTINCT lad FROM persons WHERE lad IS NOT NULL ORDER BY 1;
CREATE TABLE persons_fair(id INTEGER PRIMARY KEY, dob_key INT, sex INT, lad INT, icb INT,
                          region INT, registered INT);
INSERT INTO persons_fair
  SELECT p.id, CAST(replace(p.dob, '-', '') AS INT), p.sex, l.id, i.id, g.id, p.practice IS NOT NULL
  FROM persons p LEFT JOIN lad_dict l ON l.code = p.lad LEFT JOIN icb_dict i ON i.code = p.icb
       LEFT JOIN region_dict g ON g.code = p.region ORDER BY p.id;
CREATE INDEX persons_fair_icb ON persons_fair(icb, registered);
CREATE TABLE postings(code_id INT, setting INT, date_key INT, person INT, region INT, icb INT);
INSERT INTO postings
  SELECT d.id, r.setting, CAST(replace(r.date, '-', '') AS INT), r.person, p.region, p.icb
  FROM codes c JOIN code_dict d ON d.system = c.system AND d.text = c.text
       JOIN records r ON r.id = c.record JOIN persons_fair p ON p.id = r.person
  ORDER BY 1, 2, 3;
CREATE INDEX postings_covering ON postings(code_id, setting, date_key, person, region, icb);
CREATE TABLE records_fair(setting INT, date_key INT, person INT, lad INT, sex INT, dob_key INT);
INSERT INTO records_fair
  SELECT r.setting, CAST(replace(r.date, '-', '') AS INT), r.person, p.lad, p.sex, p.dob_key
  FROM records r JOIN persons_fair p ON p.id = r.person ORDER BY 1, 2;
CREATE INDEX records_fair_covering ON records_fair(setting, date_key, lad, sex, dob_key);
ANALYZE;
"""
FAIR_FROM, FAIR_TO = 20240101, 20241231
FAIR_QUERIES = {
    "q1": lambda c: [f"SELECT region, COUNT(DISTINCT person) FROM postings WHERE code_id = {c['t2dm']}"
                     f" AND region IS NOT NULL GROUP BY 1"],
    "q2": lambda c: [f"SELECT lad, MIN((date_key - dob_key) / 10000 / 5, 18), sex, COUNT(*)"
                     f" FROM records_fair WHERE setting = 2 AND date_key BETWEEN {FAIR_FROM}"
                     f" AND {FAIR_TO} AND lad IS NOT NULL AND sex IN (1, 2)"
                     f" AND date_key >= dob_key GROUP BY 1, 2, 3"],
    "q3": lambda c: [f"SELECT icb, COUNT(DISTINCT person) FROM postings"
                     f" WHERE code_id BETWEEN {c['e11_lo']} AND {c['e11_hi']} AND setting = 2"
                     f" AND date_key BETWEEN {FAIR_FROM} AND {FAIR_TO} AND icb IS NOT NULL"
                     f" GROUP BY 1",
                     "SELECT icb, COUNT(*) FROM persons_fair WHERE icb IS NOT NULL"
                     " AND registered = 1 GROUP BY 1"],
    "q4": lambda c: [f"SELECT region, COUNT(*) FROM (SELECT person, region FROM postings"
                     f" WHERE code_id = {c['t2dm']} AND setting = 1 INTERSECT"
                     f" SELECT person, region FROM postings WHERE code_id BETWEEN {c['e11_lo']}"
                     f" AND {c['e11_hi']} AND setting = 2) WHERE region IS NOT NULL GROUP BY 1"],
}


def bind_codes(db):
    """The code ids the fair queries need, looked up once per query."""
    (t2dm,) = db.execute("SELECT coalesce(min(id), -1) FROM code_dict"
                         " WHERE system = 1 AND text = '44054006'").fetchone()
    lo, hi = db.execute("SELECT coalesce(min(id), 0), coalesce(max(id), -1) FROM code_dict"
                        " WHERE system = 2 AND text GLOB 'E11*'").fetchone()
    return {"t2dm": t2dm, "e11_lo": lo, "e11_hi": hi}


def build_fair(db):
    start = time.monotonic()
    db.executescript(FAIR_BUILD)
    counts = [f"{db.execute(f'SELECT COUNT(*) FROM {t}').fetchone()[0]} {t}"
              for t in ("code_dict", "persons_fair", "postings", "records_fair")]
    print(f"sqlite-fair build: {', '.join(counts)} in {time.monotonic() - start:.1f} s"
          f" from the loaded tables (not part of any query's time); load average"
          f" {load_average()}", flush=True)

def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def rows_of(path, convert):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            yield convert(row)


def none_if_empty(text):
    return text if text else None


def load(db, directory):
    start = time.monotonic()
    db.executescript(
        "CREATE TABLE persons(id INTEGER PRIMARY KEY, dob TEXT, sex INT, lsoa TEXT, lad TEXT,"
        " icb TEXT, region TEXT, practice TEXT);"
        "CREATE TABLE records(id INTEGER PRIMARY KEY, person INT, setting INT, date TEXT);"
        "CREATE TABLE codes(record INT, system INT, text TEXT, role INT);")
    with db:
        db.executemany("INSERT INTO persons VALUES (?,?,?,?,?,?,?,?)", rows_of(
            os.path.join(directory, "persons.csv"),
            lambda r: (int(r[0]), r[1], int(r[2]), *map(none_if_empty, r[3:8]))))
        db.executemany("INSERT INTO records VALUES (?,?,?,?)", rows_of(
            os.path.join(directory, "records.csv"),
            lambda r: (int(r[0]), int(r[1]), int(r[2]), r[3])))
        db.executemany("INSERT INTO codes VALUES (?,?,?,?)", rows_of(
            os.path.join(directory, "codes.csv"),
            lambda r: (int(r[0]), int(r[1]), r[2], int(r[3]))))
    loaded = time.monotonic()
    db.executescript("CREATE INDEX codes_code ON codes(system, text, record);"
                     "CREATE INDEX records_setting_date ON records(setting, date);"
                     "ANALYZE;")
    counts = [f"{db.execute(f'SELECT COUNT(*) FROM {t}').fetchone()[0]} {t}"
              for t in ("persons", "records", "codes")]
    print(f"sqlite {sqlite3.sqlite_version} load: {', '.join(counts)} in {loaded - start:.1f} s,"
          f" indexes {time.monotonic() - loaded:.1f} s; load average {load_average()}",
          flush=True)


def run_query(db, system, name, statements, runs):
    times, totals, cells = [], [], 0
    load0 = load_average()
    cpu0 = time.process_time()
    for run in range(runs):
        start = time.monotonic()
        results = [db.execute(sql).fetchall() for sql in statements]
        times.append((time.monotonic() - start) * 1e3)
        if run == 0:
            totals = [sum(row[-1] for row in rows) for rows in results]
            cells = sum(1 for rows in results for row in rows if row[-1])
    print(f"RESULT {system} {name} median_ms={statistics.median(times):.2f}"
          f" min_ms={min(times):.2f} total={'/'.join(map(str, totals))} cells={cells}"
          f" cpu_ms_per_run={(time.process_time() - cpu0) * 1e3 / runs:.1f}"
          f" runs={runs} load={load0}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layout", choices=("exported", "fair", "both"), default="both")
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -4000000")  # 4 GB: the tables fit in memory
    load(db, args.csv)
    if args.layout != "fair":
        for name, statements in QUERIES.items():
            run_query(db, "sqlite", name, statements, args.runs)
    if args.layout != "exported":
        build_fair(db)
        for name, make in FAIR_QUERIES.items():
            run_query(db, "sqlite-fair", name, make(bind_codes(db)), args.runs)
    db.close()


if __name__ == "__main__":
    main()
