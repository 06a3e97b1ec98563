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


def run_query(db, name, statements, runs):
    times, totals, cells = [], [], 0
    load0 = load_average()
    for run in range(runs):
        start = time.monotonic()
        results = [db.execute(sql).fetchall() for sql in statements]
        times.append((time.monotonic() - start) * 1e3)
        if run == 0:
            totals = [sum(row[-1] for row in rows) for rows in results]
            cells = sum(1 for rows in results for row in rows if row[-1])
    print(f"RESULT sqlite {name} median_ms={statistics.median(times):.2f}"
          f" min_ms={min(times):.2f} total={'/'.join(map(str, totals))} cells={cells}"
          f" runs={runs} load={load0}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -4000000")  # 4 GB: the tables fit in memory
    load(db, args.csv)
    for name, statements in QUERIES.items():
        run_query(db, name, statements, args.runs)
    db.close()


if __name__ == "__main__":
    main()
