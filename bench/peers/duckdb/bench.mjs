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
// Must never: write anything but FILE (the database is in memory).
import { DuckDBInstance } from '@duckdb/node-api';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

function parseArgs(argv) {
    const options = { csv: null, runs: 5, threads: 2, explain: null };
    for (let i = 2; i < argv.length; i++) {
        if (argv[i] === '--csv') options.csv = argv[++i];
        else if (argv[i] === '--runs') options.runs = Number(argv[++i]);
        else if (argv[i] === '--threads') options.threads = Number(argv[++i]);
        else if (argv[i] === '--explain') options.explain = argv[++i];
        else throw new Error(`unknown argument ${argv[i]}`);
    }
    if (!options.csv || !(options.runs >= 1)) {
        throw new Error('usage: node bench.mjs --csv DIR [--runs R] [--threads T]');
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

async function runQuery(connection, name, statements, runs) {
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
    console.log(`RESULT duckdb ${name} median_ms=${median.toFixed(2)} min_ms=${sorted[0].toFixed(2)} ` +
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
    for (const [name, statements] of Object.entries(QUERIES)) {
        await runQuery(connection, name, statements, options.runs);
    }
    if (options.explain) {
        writeFileSync(options.explain, '');
        for (const [name, statements] of Object.entries(QUERIES)) {
            for (const sql of statements) {
                const reader = await connection.runAndReadAll(`EXPLAIN ANALYZE ${sql}`);
                const plan = reader.getRows().map((row) => row[row.length - 1]).join('\n');
                appendFileSync(options.explain, `-- ${name}\n${sql}\n${plan}\n\n`);
            }
        }
    }
    connection.closeSync();
    instance.closeSync?.();
}

main().catch((error) => {
    console.error(`duckdb peer: ${error.message}`);
    process.exit(1);
});
