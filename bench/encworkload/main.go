// Command encworkload measures the encrypted workload of issue 5: a
// pgbench script that INSERTs a row with two encrypted columns, SELECTs by
// the blind-indexed email and UPDATEs one encrypted column, run through
// pgveil against a table whose columns are encrypted, and the same script
// directly against a table with plaintext columns. Runs are interleaved in
// rounds so that drift hits both alike; the report gives TPS (median over
// rounds), the TPS ratio and p50/p99 latency from pgbench's per-transaction
// logs.
//
//	go run ./bench/encworkload -rounds 3 -duration 15s -clients 1,8 -modes prepared,simple [-lookup]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

const rows = 20000 // rows loaded before the runs; SELECT and UPDATE hit them

const schema = `
CREATE TABLE bench_plain (id bigserial PRIMARY KEY, org_id int8 NOT NULL, email text, phone text);
CREATE UNIQUE INDEX ON bench_plain (email);
CREATE TABLE bench_enc (id bigserial PRIMARY KEY, org_id int8 NOT NULL, email bytea, email_bidx bytea, phone bytea);
CREATE UNIQUE INDEX ON bench_enc (email_bidx);
GRANT ALL ON bench_plain, bench_enc, bench_plain_id_seq, bench_enc_id_seq TO scram_user;
`

const policy = `
tables:
  public.bench_enc:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index: {column: email_bidx, unique: true}
      phone:
        type: text
`

// script is the workload; TABLE is bench_plain or bench_enc. Values are
// numbers cast to text so the same text works in every pgbench mode.
const script = `\set id random(1, ` + "20000" + `)
\set org (:id %% 50) + 1
\set nid random(100000, 9000000000000000000)
\set norg (:nid %% 50) + 1
INSERT INTO TABLE (org_id, email, phone) VALUES (:norg, :nid::text, :nid::text);
SELECT phone FROM TABLE WHERE email = :id::text;
UPDATE TABLE SET phone = :nid::text WHERE org_id = :org AND email = :id::text;
`

// lookupScript is script with the UPDATE as an ORM writes it, without the
// tenant: pgveil looks the tenant up (docs/SQL.md, "Tenant lookups").
var lookupScript = strings.Replace(script, "WHERE org_id = :org AND email", "WHERE email", 1)

type result struct {
	tps      float64
	p50, p99 float64 // ms
}

func main() {
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	duration := flag.Duration("duration", 15*time.Second, "length of each pgbench run")
	clientsFlag := flag.String("clients", "8", "comma-separated client counts")
	modesFlag := flag.String("modes", "prepared", "comma-separated pgbench modes: simple, extended, prepared")
	goroutines := flag.Bool("goroutines", false, "also run a second pgveil with proxy.event_loops: 0 (every session on goroutines), for the event loop's share")
	hold := flag.Bool("hold", false, "load the tables, print a pgbench line per target, and wait for Ctrl-C (for profiling by hand)")
	lookup := flag.Bool("lookup", false, "also run the script with its UPDATE not naming the tenant, which pgveil looks up (a round trip more)")
	flag.Parse()
	if err := run(*rounds, *duration, split(*clientsFlag), split(*modesFlag), *goroutines, *hold, *lookup); err != nil {
		fmt.Fprintln(os.Stderr, "encworkload:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(rounds int, duration time.Duration, clients, modes []string, goroutines, hold, lookup bool) error {
	ctx := context.Background()
	cluster, err := harness.StartCluster(harness.Options{Settings: []string{"max_connections = 100"}})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	defer harness.RemoveBuild() // after the proxies stop (deferred later, run first)
	admin, err := cluster.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, schema); err != nil {
		return err
	}
	admin.Close(ctx)

	dir, err := os.MkdirTemp("", "pgveil-encbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	start := func(extra string) (*harness.Proxy, error) {
		return harness.StartProxy(harness.ProxyOptions{
			Config: fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\n  service_url: %s\nkeysource:\n  local:\n    key_env: PGVEIL_BENCH_KEY\nadmin:\n  listen: \"\"\nlog:\n  level: info\n%s%s",
				cluster.Addr(), cluster.SocketURL(harness.SuperUser, harness.Database), extra, policy),
			Env: []string{"PGVEIL_BENCH_KEY=" + base64.StdEncoding.EncodeToString(key)},
		})
	}
	proxy, err := start("")
	if err != nil {
		return err
	}
	defer proxy.Stop()

	if err := load(ctx, cluster.URL(harness.SCRAMUser, harness.Database, "sslmode=disable"), "bench_plain"); err != nil {
		return fmt.Errorf("loading plaintext rows: %w", err)
	}
	if err := load(ctx, harness.BuildURL(proxy.Addr, harness.SCRAMUser, harness.SCRAMPass, harness.Database, "sslmode=disable"), "bench_enc"); err != nil {
		return fmt.Errorf("loading encrypted rows through pgveil: %w", err)
	}
	pgbench, err := findPgbench(cluster.BinDir)
	if err != nil {
		return err
	}
	type target struct {
		name, table, host string
		port              string
		script            string // the script's file name without .sql
	}
	targets := []target{
		{"direct, plaintext columns", "bench_plain", cluster.Host, strconv.Itoa(cluster.Port), "bench_plain"},
		{"pgveil, encrypted columns", "bench_enc", hostOf(proxy.Addr), portOf(proxy.Addr), "bench_enc"},
	}
	if lookup {
		targets = append(targets, target{"pgveil, UPDATE's tenant looked up", "bench_enc", hostOf(proxy.Addr), portOf(proxy.Addr), "bench_enc_lookup"})
	}
	if goroutines {
		gp, err := start("proxy:\n  event_loops: 0\n")
		if err != nil {
			return err
		}
		defer gp.Stop()
		targets = append(targets, target{"pgveil on goroutines", "bench_enc", hostOf(gp.Addr), portOf(gp.Addr), "bench_enc"})
	}
	for _, t := range targets {
		text := script
		if t.script == "bench_enc_lookup" {
			text = lookupScript
		}
		if err := os.WriteFile(filepath.Join(dir, t.script+".sql"), []byte(strings.ReplaceAll(strings.ReplaceAll(text, "%%", "%"), "TABLE", t.table)), 0o644); err != nil {
			return err
		}
	}
	if hold {
		for _, t := range targets {
			fmt.Printf("%-26s PGSSLMODE=disable PGPASSWORD=%s %s -n -f %s -h %s -p %s -U %s %s   (pgveil pid %d)\n", t.name,
				harness.SCRAMPass, pgbench, filepath.Join(dir, t.script+".sql"), t.host, t.port, harness.SCRAMUser, harness.Database, proxy.PID())
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return nil
	}
	samples := map[string][]result{}
	for r := 1; r <= rounds; r++ {
		for _, mode := range modes {
			for _, c := range clients {
				for _, t := range targets {
					res, err := pgbenchRun(pgbench, dir, t.host, t.port, t.script, mode, c, duration)
					if err != nil {
						return fmt.Errorf("%s -M %s -c %s: %w", t.name, mode, c, err)
					}
					k := mode + "|" + c + "|" + t.name
					samples[k] = append(samples[k], res)
					fmt.Fprintf(os.Stderr, "round %d  -M %-8s -c %-2s %-27s %8.0f tps  p50 %.3f ms  p99 %.3f ms\n", r, mode, c, t.name, res.tps, res.p50, res.p99)
				}
			}
		}
	}
	fmt.Printf("### Encrypted workload (issue 5), %s\n\n", time.Now().Format("2006-01-02"))
	fmt.Printf("pgbench script per transaction: INSERT of a row with two encrypted columns (email with a unique blind index, phone; tenant keys by org_id), SELECT by email, UPDATE of phone. %d rows preloaded. %d rounds × %s, targets interleaved; TPS is the median over rounds, p50/p99 from pgbench's per-transaction log of the median run. 2 cores shared by pgbench, PostgreSQL and pgveil.\n\n", rows, rounds, duration)
	fmt.Println("| mode | clients | target | TPS | × direct plaintext | p50 ms | p99 ms |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|")
	for _, mode := range modes {
		for _, c := range clients {
			base := median(samples[mode+"|"+c+"|"+targets[0].name])
			for _, t := range targets {
				m := median(samples[mode+"|"+c+"|"+t.name])
				fmt.Printf("| %s | %s | %s | %.0f | %.2f | %.3f | %.3f |\n", mode, c, t.name, m.tps, m.tps/base.tps, m.p50, m.p99)
			}
		}
	}
	return nil
}

// load inserts the preloaded rows (ids 1..rows as emails) with COPY.
func load(ctx context.Context, url, table string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	src := make([][]any, rows)
	for i := range src {
		id := int64(i + 1)
		src[i] = []any{id%50 + 1, strconv.FormatInt(id, 10), strconv.FormatInt(id, 10)}
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"org_id", "email", "phone"}, pgx.CopyFromRows(src))
	return err
}

func findPgbench(binDir string) (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	p := filepath.Join(binDir, "pgbench")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pgbench not found")
	}
	return p, nil
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbenchRun runs the workload once and reads TPS and latency percentiles.
func pgbenchRun(pgbench, dir, host, port, table, mode, clients string, d time.Duration) (result, error) {
	prefix := filepath.Join(dir, "log-"+table)
	old, _ := filepath.Glob(prefix + "*")
	for _, f := range old {
		os.Remove(f)
	}
	cmd := exec.Command(pgbench, "-n", "-M", mode, "-c", clients, "-j", clients, "-T", strconv.Itoa(int(d.Seconds())),
		"-f", filepath.Join(dir, table+".sql"), "-l", "--log-prefix", prefix,
		"-h", host, "-p", port, "-U", harness.SCRAMUser, harness.Database)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+harness.SCRAMPass)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("%v\n%s", err, out)
	}
	m := tpsRE.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	lat, err := latencies(prefix)
	if err != nil {
		return result{}, err
	}
	return result{tps: tps, p50: percentile(lat, 0.50), p99: percentile(lat, 0.99)}, nil
}

// latencies reads every transaction's latency (µs, third field) from the
// per-client log files.
func latencies(prefix string) ([]float64, error) {
	files, _ := filepath.Glob(prefix + "*")
	var out []float64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseFloat(fields[2], 64)
			if err == nil {
				out = append(out, us/1000)
			}
		}
		fh.Close()
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no transactions logged")
	}
	sort.Float64s(out)
	return out, nil
}

func percentile(sorted []float64, p float64) float64 {
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].tps < rs[j].tps })
	return rs[len(rs)/2]
}

func hostOf(addr string) string { h, _, _ := strings.Cut(addr, ":"); return h }
func portOf(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }
