# frozen_string_literal: true

# The encryption scenario with ruby-pg (Debian's ruby-pg), the driver under
# ActiveRecord's and Sequel's PostgreSQL adapters.
#
# It uses what a Ruby application uses: exec_params (server-side
# parameters, text format, unnamed statements), prepare + exec_prepared
# (named statements, reused, one of them dropped with SQL DEALLOCATE and
# prepared again), exec with values quoted by escape_literal (the simple
# protocol), conn.transaction, pipeline mode, and the basic type maps: Ruby
# Integers go out as int8, Arrays as text[], and results come back decoded
# by the types pgveil reports (a Date for birth_date, an Integer for
# api_token, a UTF-8 String for text). The copy phase uses copy_data with
# put_copy_data / get_copy_data in text and CSV, with and without ruby-pg's
# CopyRow coders.
#
#     /usr/bin/ruby pg_scenario.rb SPEC.json scenario|copy

require_relative "enc_common"

begin
  require "pg"
rescue LoadError => e
  puts "FAIL (driver): cannot load ruby-pg (apt-get install ruby-pg): #{e.message}"
  exit 1
end

include EncCommon

def connect(s)
  conn = PG.connect(host: s["host"], port: s["port"], user: s["user"], password: s["password"],
                    dbname: s["dbname"], application_name: "enc_ruby_pg")
  conn.type_map_for_results = PG::BasicTypeMapForResults.new(conn)
  conn.type_map_for_queries = PG::BasicTypeMapForQueries.new(conn)
  conn
end

# The natural Ruby arguments of a users row: an Integer org and token, a
# Date for birth_date.
def user_args(org, u)
  [org, u["name"], u["email"], u["phone"], u["ssn"], date_arg(u["birth_date"]), int_arg(u["api_token"])]
end

def res(r)
  [r.values, r.cmd_tuples]
end

def copy_phase(r, s, conn)
  org = s["copy_org"].to_s
  r.step("copy text FROM STDIN (CopyRow encoder)", rowcount: 2) do
    res = conn.copy_data(s["copy_in_text_sql"], PG::TextEncoder::CopyRow.new) do
      s["copy_rows_text"].each { |u| conn.put_copy_data([org, *user_row(u)]) }
    end
    [nil, res.cmd_tuples]
  end
  r.step("copy csv FROM STDIN (raw lines)", rowcount: 2) do
    res = conn.copy_data(s["copy_in_csv_sql"]) do
      # One CopyData per line: the quoted field with a newline spans two.
      s["copy_in_csv"].each_line { |line| conn.put_copy_data(line) }
    end
    [nil, res.cmd_tuples]
  end
  nrows = s["copy_rows_text"].length + s["copy_rows_csv"].length
  # The protocol sends one CopyData per row, and libpq's PQgetCopyData
  # returns "one data row at a time": each get_copy_data is one row.
  copy_out = lambda do |sql|
    chunks = []
    conn.copy_data(sql) do
      while (chunk = conn.get_copy_data)
        chunks << chunk
      end
    end
    if chunks.length != nrows
      raise StepFailure, "get_copy_data returned #{chunks.length} chunks for #{nrows} rows (sizes #{chunks.map(&:bytesize).inspect}): " \
                         "the backend sends one CopyData message per row"
    end
    [[[chunks.join.force_encoding(Encoding::UTF_8)]], nil]
  end
  r.step("copy text TO STDOUT", want: [[s["copy_out_text"]]]) { copy_out.call(s["copy_out_text_sql"]) }
  r.step("copy csv TO STDOUT", want: [[s["copy_out_csv"]]]) { copy_out.call(s["copy_out_csv_sql"]) }
  want = (s["copy_rows_text"] + s["copy_rows_csv"]).map { |u| user_row(u) }
  r.step("copy text TO STDOUT (CopyRow decoder)", want: want) do
    rows = []
    conn.copy_data(s["copy_out_text_sql"], PG::TextDecoder::CopyRow.new) do
      while (row = conn.get_copy_data)
        rows << row
      end
    end
    [rows, nil]
  end
end

def scenario(r, s, conn)
  u = s["users"]
  org = s["org"]
  named = [] # statements this session prepared and still holds

  r.step("exec_params: insert one RETURNING",
         want: [[u[0]["email"], u[0]["phone"], u[0]["birth_date"], u[0]["api_token"]]], rowcount: 1) do
    res(conn.exec_params("#{INS}#{ROW} RETURNING email, phone, birth_date, api_token", user_args(org, u[0])))
  end
  r.step("prepare + exec_prepared in a transaction: insert many", rowcount: u.length - 1) do
    conn.prepare("ins_user", INS + ROW)
    named << "ins_user"
    n = 0
    conn.transaction do |c|
      u[1..].each { |x| n += c.exec_prepared("ins_user", user_args(org, x)).cmd_tuples }
    end
    [nil, n]
  end
  r.step("exec_prepared: find by email (normalize)", want: [user_row(u[0])], rowcount: 1) do
    conn.prepare("find_user", "SELECT #{COLS} FROM users WHERE email = $1")
    named << "find_user"
    res(conn.exec_prepared("find_user", [s["lookup_email"]]))
  end
  r.step("exec_params: read all (NULLs, Unicode, empty, 1 MiB)", want: u.map { |x| user_row(x) }) do
    res(conn.exec_params("SELECT #{COLS} FROM users WHERE org_id = $1 ORDER BY id", [org]))
  end
  r.step("result type map: decoded by the types pgveil reports") do
    row = conn.exec_params("SELECT #{COLS} FROM users WHERE org_id = $1 ORDER BY id LIMIT 1", [org]).values.first
    classes = row.map(&:class)
    raise StepFailure, "Ruby classes #{classes.inspect}, want String ×4, Date, Integer" if classes != [String, String, String, String, Date, Integer]
    encodings = row[0, 4].map(&:encoding)
    raise StepFailure, "encodings #{encodings.inspect}, want UTF-8" unless encodings.all?(Encoding::UTF_8)
    [nil, nil]
  end
  r.step("exec with escape_literal: IN", want: s["in_expect"].map { |e| [e] }) do
    list = s["in_emails"].map { |e| conn.escape_literal(e) }.join(", ")
    res(conn.exec("SELECT email FROM users WHERE email IN (#{list}) ORDER BY id"))
  end
  r.step("exec_params: = ANY($1) with a Ruby Array (text[])", want: s["any_expect"].map { |e| [e] }) do
    res(conn.exec_params("SELECT email FROM users WHERE email = ANY($1) ORDER BY id", [s["any_emails"]]))
  end
  r.step("exec_params: 1 MiB blind-index lookup", want: [[s["big_name"]]]) do
    res(conn.exec_params("SELECT name FROM users WHERE ssn = $1", [s["big_ssn"]]))
  end
  r.step("exec: phone IS NULL", want: s["null_phone_names"].map { |n| [n] }) do
    res(conn.exec("SELECT name FROM users WHERE org_id = #{Integer(org)} AND phone IS NULL ORDER BY id"))
  end
  r.step("exec_params: email IS NULL", want: s["null_email_names"].map { |n| [n] }) do
    res(conn.exec_params("SELECT name FROM users WHERE org_id = $1 AND email IS NULL ORDER BY id", [org]))
  end
  r.step("exec_params: UPDATE RETURNING", want: [[s["new_email"], s["new_phone"]]], rowcount: 1) do
    res(conn.exec_params("UPDATE users SET email = $1, phone = $2 WHERE org_id = $3 AND name = $4 RETURNING email, phone",
                         [s["new_email"], s["new_phone"], org, s["update_name"]]))
  end
  r.step("exec_prepared: old email gone", want: []) { res(conn.exec_prepared("find_user", [s["old_email"]])) }
  r.step("exec_prepared: new email found", want: [user_row(s["final"][0])]) do
    res(conn.exec_prepared("find_user", [s["new_lookup"]]))
  end

  up = s["upsert"]
  upsert = "INSERT INTO users (org_id, name, email, phone) VALUES "
  r.step("exec with escape_literal: ON CONFLICT DO NOTHING (new)", rowcount: 1) do
    vals = [up["name"], up["email"], up["phone"]].map { |v| conn.escape_literal(v) }.join(", ")
    res(conn.exec("#{upsert}(#{Integer(org)}, #{vals}) ON CONFLICT (email) DO NOTHING"))
  end
  r.step("exec_params: ON CONFLICT DO NOTHING (conflict)", rowcount: 0) do
    res(conn.exec_params("#{upsert}($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING",
                         [org, up["name"], s["upsert_variant"], s["upsert_phone2"]]))
  end
  r.step("exec_prepared: ON CONFLICT DO UPDATE RETURNING", want: [[up["email"], s["upsert_phone2"]]], rowcount: 1) do
    conn.prepare("upsert_user", "#{upsert}($1, $2, $3, $4) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone RETURNING email, phone")
    named << "upsert_user"
    res(conn.exec_prepared("upsert_user", [org, up["name"], s["upsert_variant"], s["upsert_phone2"]]))
  end
  d = s["doomed"]
  r.step("exec_prepared: insert doomed", rowcount: 1) { res(conn.exec_prepared("ins_user", user_args(org, d))) }
  r.step("exec_params: DELETE RETURNING", want: [[d["name"], d["email"], d["ssn"], d["birth_date"], d["api_token"]]], rowcount: 1) do
    res(conn.exec_params("DELETE FROM users WHERE email = $1 RETURNING name, email, ssn, birth_date, api_token", [s["doomed_lookup"]]))
  end
  r.step("exec with escape_literal: deleted row gone", want: [["0"]]) do
    res(conn.exec("SELECT count(*) FROM users WHERE email = #{conn.escape_literal(s['doomed_lookup'])}"))
  end
  r.step("prepare + exec_prepared: insert contacts", rowcount: s["contacts"].length) do
    conn.prepare("ins_contact", "INSERT INTO contacts (org_id, email, note) VALUES ($1, $2, $3)")
    named << "ins_contact"
    [nil, s["contacts"].sum { |c| conn.exec_prepared("ins_contact", [org, c["email"], c["note"]]).cmd_tuples }]
  end
  r.step("exec_params: JOIN on the shared blind index", want: s["join_expect"]) do
    res(conn.exec_params("SELECT u.name, u.email, c.email, c.note FROM users u JOIN contacts c ON u.email = c.email " \
                         "WHERE u.org_id = $1 AND c.org_id = $2 ORDER BY u.id, c.id", [org, org]))
  end
  r.step("exec_params: final state", want: s["final"].map { |x| user_row(x) }) do
    res(conn.exec_params("SELECT #{COLS} FROM users WHERE org_id = $1 ORDER BY id", [org]))
  end
  r.step("exec_prepared: find by email (prepared, reused)", want: [user_row(s["final"][0])], rowcount: 1) do
    res(conn.exec_prepared("find_user", [s["new_lookup"]]))
  end

  # SQL DEALLOCATE of a client name (as Rails' statement pool drops its
  # statements): the name is gone, and can be prepared again.
  r.step("DEALLOCATE a named statement, then use it") do
    conn.exec("DEALLOCATE find_user")
    named.delete("find_user")
    refused("26000", "find_user") { conn.exec_prepared("find_user", [s["new_lookup"]]) }
    [nil, nil]
  end
  r.step("prepare the deallocated name again", want: [user_row(s["final"][1])], rowcount: 1) do
    conn.prepare("find_user", "SELECT #{COLS} FROM users WHERE email = $1")
    named << "find_user"
    res(conn.exec_prepared("find_user", [s["users"][1]["email"]]))
  end

  # Pipeline mode (libpq 14+): three lookups sent before any answer.
  r.step("pipeline mode: three lookups in one sync",
         want: [[s["final"][0]["name"]], [s["big_name"]], [s["final"][1]["name"]]]) do
    conn.enter_pipeline_mode
    begin
      conn.send_query_params("SELECT name FROM users WHERE email = $1", [s["new_lookup"]])
      conn.send_query_params("SELECT name FROM users WHERE ssn = $1", [s["big_ssn"]])
      conn.send_query_prepared("find_user", [s["users"][1]["email"]])
      conn.pipeline_sync
      rows = []
      3.times do
        res = conn.get_result
        res.check
        rows << [res.getvalue(0, 0)]
        raise StepFailure, "more than one result for a query" unless conn.get_result.nil?
      end
      sync = conn.get_result
      raise StepFailure, "want PIPELINE_SYNC, got #{sync&.res_status(sync.result_status)}" unless sync&.result_status == PG::PGRES_PIPELINE_SYNC
    ensure
      conn.exit_pipeline_mode
    end
    [rows, nil]
  end

  # What the server holds for this session: one statement per name the
  # client prepared and kept, and at most one for the unnamed statement
  # (pgveil prepares statements on encrypted tables under names of its own;
  # __pgveil_refuse is pgveil's one statement for refusals).
  r.step("upstream prepared statements: one per client statement") do
    held = conn.exec("SELECT name, left(statement, 60) FROM pg_prepared_statements " \
                     "WHERE name <> '__pgveil_refuse' ORDER BY prepare_time").values
    if held.length < named.length || held.length > named.length + 1
      raise StepFailure, "the server holds #{held.length} prepared statements for this session, " \
                         "want #{named.length} (#{named.join(', ')}) and at most one unnamed: #{held.inspect}"
    end
    [nil, nil]
  end
end

EncCommon.run do |r|
  s = load_spec
  conn = connect(s)
  if phase == "copy"
    copy_phase(r, s, conn)
  else
    scenario(r, s, conn)
  end
  conn.close
end
