// bench/peers/duckdb/bench.mjs: the DuckDB peer of the carecount benchmark.
//
//   node bench.mjs --csv DIR [--runs R] [--threads T] [--explain FILE]
//
// Loads the CSV files that `bench_queries --export DIR` wrote (persons,
// records and codes of the opted-in persons only, so no opt-out filter is
// needed here) into in-memory DuckDB tables, then runs the four benchmark
// queries of issue 4 in SQL, R times each, and prints for each one
//   RESULT duckdb qN median_ms=X min_ms=Y total=T cells=C
// in the same format as bench_queries, so bench/run.sh can pair them. The
// load time is printed separately and is not part of any query's time.
// total is the sum of the counts and cells the number of result rows with a
// non-zero count: they must equal the engine's. cpu_ms_per_run is the CPU
// time of this process (all threads) per run, which depends less on the
// machine's load than the wall time. --explain writes DuckDB's EXPLAIN
// ANALYZE of each query to FILE after the timed runs.
//
// After the timed runs on the tables as exported, it builds the layout a
// DuckDB user who cares about speed would choose (the "fair" layout, below
// FAIR_BUILD), times that build separately (as the engine's layout is built
// at ingest), and runs the same four queries on it, printed as
//   RESULT duckdb-fair qN median_ms=X min_ms=Y total=T cells=C
// Each query's code ids are looked up in the code dictionary once before
// its timed runs, as the engine binds a query's codes once (cc_query_bind);
// the timed SQL carries them as constants, so DuckDB's zone maps (per-row-
// group min/max of code_id) can skip all but the code's row groups.
// --explain-fair writes EXPLAIN ANALYZE of the fair queries to FILE.
// --layout exported|fair|both (default both) picks which layouts run.
//
// Must never: write anything but the --explain files (the database is in
// memory).
import { DuckDBInstance } from '@duckdb/node-api';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

function parseArgs(argv) {
    const options = { csv: null, runs: 5, threads: 2, explain: null, explainFair: null,
                      layout: 'both' };
    for (let i = 2; i < argv.length; i++) {
        if (argv[i] === '--csv') options.csv = argv[++i];
        else if (argv[i] === '--runs') options.runs = Number(argv[++i]);
        else if (argv[i] === '--threads') options.threads = Number(argv[++i]);
        else if (argv[i] === '--explain') options.explain = argv[++i];
        else if (argv[i] === '--explain-fair') options.explainFair = argv[++i];
        else if (argv[i] === '--layout') options.layout = argv[++i];
        else throw new Error(`unknown argument ${argv[i]}`);
    }
    if (!options.csv || !(options.runs >= 1) || !['exported', 'fair', 'both'].includes(options.layout)) {
        throw new Error('usage: node bench.mjs --csv DIR [--runs R] [--threads T] [--explain FILE] ' +
                        '[--explain-fair FILE] [--layout exported|fair|both]');
    }
    return options;
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];

// The same queries as bench/bench_queries.c; each entry is one benchmark
// query, a list of SQL statements whose rows end with a count.
const YEAR_FROM = "DATE '2024-01-01'";
const YEAR_TO = "DATE '2024-12-31'";
const QUERIES = {
    // distinct persons with type 2 diabetes (SNOMED CT), any setting, per region
    q1: [`SELECT p.region, COUNT(DISTINCT p.id) AS n
          FROM codes c JOIN records r ON r.id = c.record JOIN persons p ON p.id = r.person
          WHERE c.system = 1 AND c.text = '44054006' AND p.region IS NOT NULL
          GROUP BY p.region`],
    // hospital episodes in 2024 per district x 5-year age band (at the episode) x sex
    q2: [`SELECT p.lad, LEAST(date_sub('year', p.dob, r.date) // 5, 18) AS band, p.sex,
                 COUNT(*) AS n
          FROM records r JOIN persons p ON p.id = r.person
          WHERE r.setting = 2 AND r.date BETWEEN ${YEAR_FROM} AND ${YEAR_TO}
            AND p.lad IS NOT NULL AND p.sex IN (1, 2) AND date_sub('year', p.dob, r.date) >= 0
          GROUP BY ALL`],
    // per ICB: persons with an E11* hospital episode in 2024, and the registered population
    q3: [`SELECT p.icb, COUNT(DISTINCT p.id) AS n
          FROM codes c JOIN records r ON r.id = c.record JOIN persons p ON p.id = r.person
          WHERE c.system = 2 AND c.text LIKE 'E11%' AND r.setting = 2
            AND r.date BETWEEN ${YEAR_FROM} AND ${YEAR_TO} AND p.icb IS NOT NULL
          GROUP BY p.icb`,
         `SELECT icb, COUNT(*) AS n FROM persons
          WHERE practice IS NOT NULL AND icb IS NOT NULL GROUP BY icb`],
    // persons with type 2 diabetes in the GP record (SNOMED CT) and in a hospital episode (ICD-10)
    q4: [`WITH gp AS (SELECT DISTINCT r.person FROM codes c JOIN records r ON r.id = c.record
                      WHERE c.system = 1 AND c.text = '44054006' AND r.setting = 1),
               hospital AS (SELECT DISTINCT r.person FROM codes c JOIN records r ON r.id = c.record
                            WHERE c.system = 2 AND c.text LIKE 'E11%' AND r.setting = 2)
          SELECT p.region, COUNT(*) AS n
          FROM persons p JOIN gp ON gp.person = p.id JOIN hospital h ON h.person = p.id
          WHERE p.region IS NOT NULL GROUP BY p.region`],
};

// ---- the fair layout ------------------------------------------------------------------
//
// What a DuckDB user who cares about speed builds from the same three tables:
//   code_dict     integer id per (system, text), assigned in (system, text)
//                 order, so an ICD-10 prefix such as E11 is one id range;
//   region_dict, icb_dict, lad_dict: integer ids for the areas;
//   persons_fair  id, dob, sex, lad, icb, region (integer ids), registered;
//   postings      one row per code occurrence: code_id, setting, date, person
//                 and the person's region and ICB, sorted by (code_id,
//                 setting, date), so the zone maps of code_id skip every row
//                 group but the asked code's;
//   records_fair  one row per record: setting, date, person and the person's
//                 district, sex and date of birth, sorted by (setting, date),
//                 so a setting and a year are a contiguous run of row groups.
// Built once before timing, as the engine's store is built at ingest.
const FAIR_BUILD = [
    `CREATE TABLE code_dict AS
     SELECT (row_number() OVER (ORDER BY system, text) - 1)::INTEGER AS id, system, text
     FROM (SELECT DISTINCT system, text FROM codes)`,
    ...[['region', 'UTINYINT'], ['icb', 'USMALLINT'], ['lad', 'USMALLINT']].map(([area, type]) =>
        `CREATE TABLE ${area}_dict AS
         SELECT (row_number() OVER (ORDER BY code) - 1)::${type} AS id, code
         FROM (SELECT DISTINCT ${area} AS code FROM persons WHERE ${area} IS NOT NULL)`),
    `CREATE TABLE persons_fair AS
     SELECT p.id, p.dob, p.sex, l.id AS lad, i.id AS icb, g.id AS region,
            p.practice IS NOT NULL AS registered
     FROM persons p LEFT JOIN lad_dict l ON l.code = p.lad LEFT JOIN icb_dict i ON i.code = p.icb
          LEFT JOIN region_dict g ON g.code = p.region
     ORDER BY p.id`,
    `CREATE TABLE postings AS
     SELECT d.id AS code_id, r.setting, r.date, r.person, p.region, p.icb
     FROM codes c JOIN code_dict d ON d.system = c.system AND d.text = c.text
          JOIN records r ON r.id = c.record JOIN persons_fair p ON p.id = r.person
     ORDER BY d.id, r.setting, r.date`,
    `CREATE TABLE records_fair AS
     SELECT r.setting, r.date, r.person, p.lad, p.sex, p.dob
     FROM records r JOIN persons_fair p ON p.id = r.person
     ORDER BY r.setting, r.date`,
];

// Looks up, once per query as the engine's bind does, the code ids the fair
// queries need: the SNOMED CT code's id and the id range of ICD-10 E11*
// (contiguous by construction; lo > hi when no code matches).
async function bindCodes(connection) {
    const one = await connection.runAndReadAll(
        "SELECT coalesce(min(id), -1) FROM code_dict WHERE system = 1 AND text = '44054006'");
    const range = await connection.runAndReadAll(
        "SELECT coalesce(min(id), 0), coalesce(max(id), -1) FROM code_dict " +
        "WHERE system = 2 AND starts_with(text, 'E11')");
    const [lo, hi] = range.getRows()[0].map(Number);
    return { t2dm: Number(one.getRows()[0][0]), e11Lo: lo, e11Hi: hi };
}

// The four queries on the fair layout; same answers as QUERIES.
const FAIR_QUERIES = {
    q1: (c) => [`SELECT region, COUNT(DISTINCT person) AS n FROM postings
                 WHERE code_id = ${c.t2dm} AND region IS NOT NULL GROUP BY region`],
    q2: () => [`SELECT lad, LEAST(date_sub('year', dob, date) // 5, 18) AS band, sex, COUNT(*) AS n
                FROM records_fair
                WHERE setting = 2 AND date BETWEEN ${YEAR_FROM} AND ${YEAR_TO}
                  AND lad IS NOT NULL AND sex IN (1, 2) AND date_sub('year', dob, date) >= 0
                GROUP BY ALL`],
    q3: (c) => [`SELECT icb, COUNT(DISTINCT person) AS n FROM postings
                 WHERE code_id BETWEEN ${c.e11Lo} AND ${c.e11Hi} AND setting = 2
                   AND date BETWEEN ${YEAR_FROM} AND ${YEAR_TO} AND icb IS NOT NULL
                 GROUP BY icb`,
                `SELECT icb, COUNT(*) AS n FROM persons_fair
                 WHERE registered AND icb IS NOT NULL GROUP BY icb`],
    q4: (c) => [`SELECT region, COUNT(*) AS n
                 FROM (SELECT person, region FROM postings WHERE code_id = ${c.t2dm} AND setting = 1
                       INTERSECT
                       SELECT person, region FROM postings
                       WHERE code_id BETWEEN ${c.e11Lo} AND ${c.e11Hi} AND setting = 2)
                 WHERE region IS NOT NULL GROUP BY region`],
};

async function buildFair(connection) {
    const start = performance.now();
    for (const sql of FAIR_BUILD) await connection.run(sql);
    const seconds = (performance.now() - start) / 1000;
    const counts = [];
    for (const table of ['code_dict', 'persons_fair', 'postings', 'records_fair']) {
        const reader = await connection.runAndReadAll(`SELECT COUNT(*) FROM ${table}`);
        counts.push(`${Number(reader.getRows()[0][0])} ${table}`);
    }
    const size = await connection.runAndReadAll('PRAGMA database_size');
    const memory = size.getRowObjectsJson()[0].memory_usage;
    console.log(`duckdb-fair build: ${counts.join(', ')} in ${seconds.toFixed(1)} s wall ` +
                `from the loaded tables (not part of any query's time); memory_usage ${memory} ` +
                `(both layouts); load average ${loadAverage()}`);
}

// Writes EXPLAIN ANALYZE of each statement to file; with scans, also how many
// rows each table scan read of the table's rows (DuckDB's profiling metric
// operator_rows_scanned): what zone maps skipped shows as the difference.
async function explainAll(connection, file, queries, scans = false) {
    writeFileSync(file, '');
    for (const [name, statements] of Object.entries(queries)) {
        for (const sql of statements) {
            const reader = await connection.runAndReadAll(`EXPLAIN ANALYZE ${sql}`);
            const plan = reader.getRows().map((row) => row[row.length - 1]).join('\n');
            appendFileSync(file, `-- ${name}\n${sql}\n${plan}\n`);
            if (scans) {
                const lines = await scanSummary(connection, sql);
                appendFileSync(file, lines.map((line) => `-- ${name} ${line}\n`).join(''));
                for (const line of lines) console.log(`duckdb-fair ${name} ${line}`);
            }
            appendFileSync(file, '\n');
        }
    }
}

async function scanSummary(connection, sql) {
    await connection.run(`SET custom_profiling_settings = '{"OPERATOR_ROWS_SCANNED": "true",
        "OPERATOR_CARDINALITY": "true", "EXTRA_INFO": "true"}'`);
    const reader = await connection.runAndReadAll(`EXPLAIN (ANALYZE, FORMAT json) ${sql}`);
    await connection.run('RESET custom_profiling_settings');
    const rows = reader.getRows();
    const tree = JSON.parse(String(rows[0][rows[0].length - 1]));
    const lines = [];
    const walk = async (node) => {
        const table = node.extra_info?.Table;
        if (table && /SCAN/.test(node.operator_name ?? '')) {
            const size = await connection.runAndReadAll(`SELECT COUNT(*) FROM ${table}`);
            lines.push(`scan of ${table.split('.').pop()}: read ${node.operator_rows_scanned} of ` +
                       `${Number(size.getRows()[0][0])} rows, ${node.operator_cardinality} passed ` +
                       `the filters (${node.extra_info.Filters ?? 'none'})`.replace(/\s+/g, ' '));
        }
        for (const child of node.children ?? []) await walk(child);
    };
    for (const root of Array.isArray(tree) ? tree : [tree]) await walk(root);
    return lines;
}

function csvTable(dir, file, columns) {
    const spec = Object.entries(columns).map(([k, v]) => `'${k}': '${v}'`).join(', ');
    return `SELECT * FROM read_csv('${dir}/${file}', header = true, columns = {${spec}})`;
}

async function load(connection, dir) {
    const start = performance.now();
    await connection.run(`CREATE TABLE persons AS ${csvTable(dir, 'persons.csv', {
        id: 'INTEGER', dob: 'DATE', sex: 'TINYINT', lsoa: 'VARCHAR', lad: 'VARCHAR',
        icb: 'VARCHAR', region: 'VARCHAR', practice: 'VARCHAR' })}`);
    await connection.run(`CREATE TABLE records AS ${csvTable(dir, 'records.csv', {
        id: 'INTEGER', person: 'INTEGER', setting: 'TINYINT', date: 'DATE' })}`);
    await connection.run(`CREATE TABLE codes AS ${csvTable(dir, 'codes.csv', {
        record: 'INTEGER', system: 'TINYINT', text: 'VARCHAR', role: 'TINYINT' })}`);
    const seconds = (performance.now() - start) / 1000;
    const counts = [];
    for (const table of ['persons', 'records', 'codes']) {
        const reader = await connection.runAndReadAll(`SELECT COUNT(*) FROM ${table}`);
        counts.push(`${Number(reader.getRows()[0][0])} ${table}`);
    }
    const size = await connection.runAndReadAll('PRAGMA database_size');
    const memory = size.getRowObjectsJson()[0].memory_usage;
    console.log(`duckdb load: ${counts.join(', ')} in ${seconds.toFixed(1)} s wall; ` +
                `memory_usage ${memory}; load average ${loadAverage()}`);
}

async function runQuery(connection, system, name, statements, runs) {
    const times = [];
    let totals = null, cells = 0;
    const load0 = loadAverage();
    const cpu0 = process.cpuUsage();
    for (let run = 0; run < runs; run++) {
        const start = performance.now();
        const results = [];
        for (const sql of statements) {
            const reader = await connection.runAndReadAll(sql);
            results.push(reader.getRows());
        }
        times.push(performance.now() - start);
        if (run === 0) {
            totals = results.map((rows) => rows.reduce((sum, row) => sum + Number(row[row.length - 1]), 0));
            cells = results.reduce((sum, rows) => sum + rows.filter((row) => Number(row[row.length - 1]) !== 0).length, 0);
        }
    }
    const cpu = process.cpuUsage(cpu0);
    const cpuPerRun = (cpu.user + cpu.system) / 1000 / runs;
    const sorted = [...times].sort((a, b) => a - b);
    const median = runs % 2 ? sorted[(runs - 1) / 2] : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
    console.log(`RESULT ${system} ${name} median_ms=${median.toFixed(2)} min_ms=${sorted[0].toFixed(2)} ` +
                `total=${totals.join('/')} cells=${cells} cpu_ms_per_run=${cpuPerRun.toFixed(1)} ` +
                `runs=${runs} load=${load0}`);
}

async function main() {
    const options = parseArgs(process.argv);
    const instance = await DuckDBInstance.create(':memory:', { threads: String(options.threads) });
    const connection = await instance.connect();
    const version = await connection.runAndReadAll('SELECT version()');
    console.log(`duckdb ${version.getRows()[0][0]}, threads ${options.threads}`);
    await load(connection, options.csv);
    if (options.layout !== 'fair') {
        for (const [name, statements] of Object.entries(QUERIES)) {
            await runQuery(connection, 'duckdb', name, statements, options.runs);
        }
        if (options.explain) await explainAll(connection, options.explain, QUERIES);
    }
    if (options.layout !== 'exported') {
        await buildFair(connection);
        const bound = {};
        for (const [name, make] of Object.entries(FAIR_QUERIES)) {
            bound[name] = make(await bindCodes(connection));
            await runQuery(connection, 'duckdb-fair', name, bound[name], options.runs);
        }
        if (options.explainFair) await explainAll(connection, options.explainFair, bound, true);
    }
    connection.closeSync();
    instance.closeSync?.();
}

main().catch((error) => {
    console.error(`duckdb peer: ${error.message}`);
    process.exit(1);
});
