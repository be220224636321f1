// The encryption scenario of pgveil's end-to-end suite with JDBC (Debian's
// libpostgresql-jdbc-java), run by integration/enc_jdbc_test.go:
//
//   javac -cp /usr/share/java/postgresql.jar -d OUT EncScenario.java
//   java -cp OUT:/usr/share/java/postgresql.jar EncScenario SPEC.properties scenario|copy
//
// SPEC.properties is the Go test's encSpec flattened (users.0.email, …;
// lists have .n; NULL is an absent key). PreparedStatements bind with
// setString, setDate and setLong (setNull for NULLs), inserts go in
// batches (addBatch/executeBatch), values are read with getString (and
// getDate/getLong once); a lookup runs past prepareThreshold so pgjdbc
// switches to a named server-side statement. The COPY phase uses
// CopyManager. Each step prints "ok <step>" or "FAIL <step>: …"; the exit
// status is 1 if any step failed.

import java.io.FileInputStream;
import java.io.InputStream;
import java.io.StringReader;
import java.io.StringWriter;
import java.sql.Array;
import java.sql.Connection;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class EncScenario {
    static Properties spec = new Properties();
    static int failures = 0;

    static String get(String key) { return spec.getProperty(key); }

    static String must(String key) {
        String v = spec.getProperty(key);
        if (v == null) throw new IllegalArgumentException("spec has no " + key);
        return v;
    }

    static int count(String key) { return Integer.parseInt(must(key + ".n")); }

    static List<String> list(String key) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < count(key); i++) out.add(get(key + "." + i));
        return out;
    }

    /** A user of the spec as the scenario's SELECTs return it. */
    static List<String> userRow(String key) {
        return Arrays.asList(get(key + ".name"), get(key + ".email"), get(key + ".phone"), get(key + ".ssn"),
                get(key + ".birth_date"), get(key + ".api_token"));
    }

    static List<List<String>> rowsOf(String... keys) {
        List<List<String>> out = new ArrayList<>();
        for (String k : keys) out.add(userRow(k));
        return out;
    }

    static List<List<String>> column(List<String> vs) {
        List<List<String>> out = new ArrayList<>();
        for (String v : vs) out.add(Arrays.asList(v));
        return out;
    }

    static String show(Object v) {
        if (v == null) return "NULL";
        String s = String.valueOf(v);
        return s.length() > 120 ? "\"" + s.substring(0, 100) + "\"… (" + s.length() + " chars)" : "\"" + s + "\"";
    }

    static void ok(String step) { System.out.println("ok " + step); }

    static void fail(String step, String msg) {
        failures++;
        System.out.println("FAIL " + step + ": " + msg);
    }

    static List<List<String>> read(ResultSet rs) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(rs.getString(i));
            out.add(row);
        }
        rs.close();
        return out;
    }

    static void compare(String step, List<List<String>> got, List<List<String>> want) {
        if (got.size() != want.size()) {
            fail(step, "got " + got.size() + " rows, want " + want.size() + ": " + show(got));
            return;
        }
        for (int i = 0; i < got.size(); i++) {
            for (int j = 0; j < want.get(i).size(); j++) {
                if (!Objects.equals(got.get(i).get(j), want.get(i).get(j))) {
                    fail(step, "row " + i + " field " + j + ": got " + show(got.get(i).get(j)) + ", want " + show(want.get(i).get(j)));
                    return;
                }
            }
        }
        ok(step);
    }

    interface Body { void run() throws Exception; }

    /** Runs one step; an exception fails it and the scenario goes on. */
    static void step(String name, Body b) {
        try {
            b.run();
        } catch (SQLException e) {
            fail(name, "SQLSTATE " + e.getSQLState() + ": " + e.getMessage().split("\n")[0]);
        } catch (Exception e) {
            fail(name, e.toString());
        }
    }

    static void setText(PreparedStatement ps, int i, String v) throws SQLException {
        if (v == null) ps.setNull(i, Types.VARCHAR); else ps.setString(i, v);
    }

    static void setDate(PreparedStatement ps, int i, String v) throws SQLException {
        if (v == null) ps.setNull(i, Types.DATE); else ps.setDate(i, Date.valueOf(v));
    }

    static void setLong(PreparedStatement ps, int i, String v) throws SQLException {
        if (v == null) ps.setNull(i, Types.BIGINT); else ps.setLong(i, Long.parseLong(v));
    }

    /** Binds a users row of the spec as org_id, name, email, phone, ssn, birth_date, api_token. */
    static void bindUser(PreparedStatement ps, long org, String key) throws SQLException {
        ps.setLong(1, org);
        ps.setString(2, must(key + ".name"));
        setText(ps, 3, get(key + ".email"));
        setText(ps, 4, get(key + ".phone"));
        setText(ps, 5, get(key + ".ssn"));
        setDate(ps, 6, get(key + ".birth_date"));
        setLong(ps, 7, get(key + ".api_token"));
    }

    static final String COLS = "name, email, phone, ssn, birth_date, api_token";
    static final String INS = "INSERT INTO users (org_id, " + COLS + ") VALUES (?, ?, ?, ?, ?, ?, ?)";

    public static void main(String[] args) throws Exception {
        try (InputStream in = new FileInputStream(args[0])) {
            spec.load(in);
        }
        String phase = args.length > 1 ? args[1] : "scenario";
        String url = "jdbc:postgresql://" + must("host") + ":" + must("port") + "/" + must("dbname") + "?ApplicationName=enc_jdbc&sslmode=disable";
        try (Connection conn = DriverManager.getConnection(url, must("user"), must("password"))) {
            conn.setAutoCommit(true);
            if (phase.equals("copy")) copyPhase(conn); else scenario(conn);
        } catch (Exception e) {
            fail("(driver)", e.toString());
        }
        System.exit(failures > 0 ? 1 : 0);
    }

    static void scenario(Connection conn) {
        long org = Long.parseLong(must("org"));
        int users = count("users");

        step("insert one RETURNING", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INS.replace("?)", "?) RETURNING email, phone, birth_date, api_token"))) {
                bindUser(ps, org, "users.0");
                compare("insert one RETURNING", read(ps.executeQuery()), Arrays.asList(Arrays.asList(
                        get("users.0.email"), get("users.0.phone"), get("users.0.birth_date"), get("users.0.api_token"))));
            }
        });
        step("insert many (addBatch/executeBatch)", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INS)) {
                for (int i = 1; i < users; i++) {
                    bindUser(ps, org, "users." + i);
                    ps.addBatch();
                }
                int total = 0;
                for (int n : ps.executeBatch()) total += n;
                if (total != users - 1) fail("insert many (addBatch/executeBatch)", total + " rows, want " + (users - 1));
                else ok("insert many (addBatch/executeBatch)");
            }
        });
        step("find by email, past prepareThreshold", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT " + COLS + " FROM users WHERE email = ?")) {
                for (int i = 1; i <= 7; i++) {
                    ps.setString(1, i % 2 == 0 ? must("lookup_email") : must("lookup_email").trim().toLowerCase());
                    compare("find by email (execution " + i + ")", read(ps.executeQuery()), rowsOf("users.0"));
                }
            }
        });
        step("getDate/getLong", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT birth_date, api_token FROM users WHERE email = ?")) {
                ps.setString(1, must("lookup_email"));
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) { fail("getDate/getLong", "no row"); return; }
                    String d = rs.getDate(1).toString();
                    long t = rs.getLong(2);
                    if (!d.equals(must("users.0.birth_date")) || t != Long.parseLong(must("users.0.api_token")))
                        fail("getDate/getLong", "got " + d + " " + t);
                    else ok("getDate/getLong");
                }
            }
        });
        step("read all (NULLs, Unicode, empty, 1 MiB)", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT " + COLS + " FROM users WHERE org_id = ? ORDER BY id")) {
                ps.setLong(1, org);
                List<List<String>> want = new ArrayList<>();
                for (int i = 0; i < users; i++) want.add(userRow("users." + i));
                compare("read all (NULLs, Unicode, empty, 1 MiB)", read(ps.executeQuery()), want);
            }
        });
        step("IN", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT email FROM users WHERE email IN (?, ?, ?) ORDER BY id")) {
                List<String> in = list("in_emails");
                for (int i = 0; i < 3; i++) ps.setString(i + 1, in.get(i));
                compare("IN", read(ps.executeQuery()), column(list("in_expect")));
            }
        });
        step("= ANY(?) with setArray", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT email FROM users WHERE email = ANY(?) ORDER BY id")) {
                Array arr = conn.createArrayOf("text", list("any_emails").toArray());
                ps.setArray(1, arr);
                compare("= ANY(?) with setArray", read(ps.executeQuery()), column(list("any_expect")));
            }
        });
        step("1 MiB blind-index lookup", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM users WHERE ssn = ?")) {
                ps.setString(1, must("big_ssn"));
                compare("1 MiB blind-index lookup", read(ps.executeQuery()), column(Arrays.asList(must("big_name"))));
            }
        });
        for (String c : new String[]{"phone", "email"}) {
            step(c + " IS NULL", () -> {
                try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM users WHERE org_id = ? AND " + c + " IS NULL ORDER BY id")) {
                    ps.setLong(1, org);
                    compare(c + " IS NULL", read(ps.executeQuery()), column(list("null_" + c + "_names")));
                }
            });
        }
        step("UPDATE RETURNING", () -> {
            try (PreparedStatement ps = conn.prepareStatement("UPDATE users SET email = ?, phone = ? WHERE org_id = ? AND name = ? RETURNING email, phone")) {
                ps.setString(1, must("new_email"));
                ps.setString(2, must("new_phone"));
                ps.setLong(3, org);
                ps.setString(4, must("update_name"));
                compare("UPDATE RETURNING", read(ps.executeQuery()), Arrays.asList(Arrays.asList(must("new_email"), must("new_phone"))));
            }
        });
        step("old email gone, new found", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM users WHERE email = ?")) {
                ps.setString(1, must("old_email"));
                compare("old email gone", read(ps.executeQuery()), new ArrayList<>());
                ps.setString(1, must("new_lookup"));
                compare("new email found", read(ps.executeQuery()), column(Arrays.asList(must("update_name"))));
            }
        });
        String upsert = "INSERT INTO users (org_id, name, email, phone) VALUES (?, ?, ?, ?) ON CONFLICT (email) DO ";
        step("ON CONFLICT DO NOTHING", () -> {
            try (PreparedStatement ps = conn.prepareStatement(upsert + "NOTHING")) {
                ps.setLong(1, org);
                ps.setString(2, must("upsert.name"));
                ps.setString(3, must("upsert.email"));
                ps.setString(4, must("upsert.phone"));
                int a = ps.executeUpdate();
                ps.setString(3, must("upsert_variant"));
                ps.setString(4, must("upsert_phone2"));
                int b = ps.executeUpdate();
                if (a != 1 || b != 0) fail("ON CONFLICT DO NOTHING", "updates " + a + ", " + b + "; want 1, 0");
                else ok("ON CONFLICT DO NOTHING");
            }
        });
        step("ON CONFLICT DO UPDATE RETURNING", () -> {
            try (PreparedStatement ps = conn.prepareStatement(upsert + "UPDATE SET phone = EXCLUDED.phone RETURNING email, phone")) {
                ps.setLong(1, org);
                ps.setString(2, must("upsert.name"));
                ps.setString(3, must("upsert_variant"));
                ps.setString(4, must("upsert_phone2"));
                compare("ON CONFLICT DO UPDATE RETURNING", read(ps.executeQuery()),
                        Arrays.asList(Arrays.asList(must("upsert.email"), must("upsert_phone2"))));
            }
        });
        step("insert doomed, DELETE RETURNING", () -> {
            try (PreparedStatement ins = conn.prepareStatement(INS);
                 PreparedStatement del = conn.prepareStatement("DELETE FROM users WHERE email = ? RETURNING name, email, ssn, birth_date, api_token");
                 PreparedStatement cnt = conn.prepareStatement("SELECT count(*) FROM users WHERE email = ?")) {
                bindUser(ins, org, "doomed");
                ins.executeUpdate();
                del.setString(1, must("doomed_lookup"));
                compare("DELETE RETURNING", read(del.executeQuery()), Arrays.asList(Arrays.asList(
                        get("doomed.name"), get("doomed.email"), get("doomed.ssn"), get("doomed.birth_date"), get("doomed.api_token"))));
                cnt.setString(1, must("doomed_lookup"));
                compare("deleted row gone", read(cnt.executeQuery()), column(Arrays.asList("0")));
            }
        });
        step("insert contacts (batch)", () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO contacts (org_id, email, note) VALUES (?, ?, ?)")) {
                int n = count("contacts");
                for (int i = 0; i < n; i++) {
                    ps.setLong(1, org);
                    setText(ps, 2, get("contacts." + i + ".email"));
                    setText(ps, 3, get("contacts." + i + ".note"));
                    ps.addBatch();
                }
                int total = 0;
                for (int c : ps.executeBatch()) total += c;
                if (total != n) fail("insert contacts (batch)", total + " rows, want " + n);
                else ok("insert contacts (batch)");
            }
        });
        step("JOIN on the shared blind index", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email WHERE u.org_id = ? AND c.org_id = ? ORDER BY u.id, c.id")) {
                ps.setLong(1, org);
                ps.setLong(2, org);
                List<List<String>> want = new ArrayList<>();
                for (int i = 0; i < count("join_expect"); i++) {
                    List<String> row = new ArrayList<>();
                    for (int j = 0; j < count("join_expect." + i); j++) row.add(get("join_expect." + i + "." + j));
                    want.add(row);
                }
                compare("JOIN on the shared blind index", read(ps.executeQuery()), want);
            }
        });
        step("final state", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT " + COLS + " FROM users WHERE org_id = ? ORDER BY id")) {
                ps.setLong(1, org);
                List<List<String>> want = new ArrayList<>();
                for (int i = 0; i < count("final"); i++) want.add(userRow("final." + i));
                compare("final state", read(ps.executeQuery()), want);
            }
        });
        // With autocommit off and a fetch size, pgjdbc reads through a
        // portal with a row limit (Execute max rows, PortalSuspended).
        step("setFetchSize(2): a portal read in parts", () -> {
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement("SELECT " + COLS + " FROM users WHERE org_id = ? ORDER BY id")) {
                ps.setFetchSize(2);
                ps.setLong(1, org);
                List<List<String>> want = new ArrayList<>();
                for (int i = 0; i < count("final"); i++) want.add(userRow("final." + i));
                compare("setFetchSize(2): a portal read in parts", read(ps.executeQuery()), want);
            } finally {
                conn.commit();
                conn.setAutoCommit(true);
            }
        });
        // What Hibernate's schema validation and Java tools read: through
        // pgveil an encrypted column has its logical type in the catalog
        // (rewrite/overlay.go); a blind index stays bytea.
        step("DatabaseMetaData.getColumns", () -> {
            List<List<String>> got = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getColumns(null, "public", "users", null)) {
                while (rs.next()) {
                    got.add(Arrays.asList(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"), String.valueOf(rs.getInt("DATA_TYPE"))));
                }
            }
            compare("DatabaseMetaData.getColumns", got, Arrays.asList(
                    Arrays.asList("id", "bigserial", String.valueOf(Types.BIGINT)),
                    Arrays.asList("org_id", "int8", String.valueOf(Types.BIGINT)),
                    Arrays.asList("name", "text", String.valueOf(Types.VARCHAR)),
                    Arrays.asList("email", "text", String.valueOf(Types.VARCHAR)),
                    Arrays.asList("email_bidx", "bytea", String.valueOf(Types.BINARY)),
                    Arrays.asList("phone", "text", String.valueOf(Types.VARCHAR)),
                    Arrays.asList("ssn", "text", String.valueOf(Types.VARCHAR)),
                    Arrays.asList("ssn_bidx", "bytea", String.valueOf(Types.BINARY)),
                    Arrays.asList("birth_date", "date", String.valueOf(Types.DATE)),
                    Arrays.asList("api_token", "int8", String.valueOf(Types.BIGINT)),
                    Arrays.asList("created_at", "timestamptz", String.valueOf(Types.TIMESTAMP))));
        });
    }

    static void copyPhase(Connection conn) {
        step("CopyManager", () -> {
            CopyManager cm = conn.unwrap(PGConnection.class).getCopyAPI();
            for (String f : new String[]{"text", "csv"}) {
                String name = "copyIn " + f;
                step(name, () -> {
                    long n = cm.copyIn(must("copy_in_" + f + "_sql"), new StringReader(must("copy_in_" + f)));
                    if (n != 2) fail(name, n + " rows, want 2"); else ok(name);
                });
            }
            for (String f : new String[]{"text", "csv"}) {
                String name = "copyOut " + f;
                step(name, () -> {
                    StringWriter w = new StringWriter();
                    cm.copyOut(must("copy_out_" + f + "_sql"), w);
                    if (!w.toString().equals(must("copy_out_" + f))) fail(name, "got " + show(w) + ", want " + show(must("copy_out_" + f)));
                    else ok(name);
                });
            }
        });
    }
}
