# frozen_string_literal: true

# The encryption scenario with ActiveRecord 6.1 (Debian's
# ruby-activerecord, over ruby-pg), as a Rails application uses it.
#
#     /usr/bin/ruby activerecord_scenario.rb SPEC.json scenario|timestamps
#
# The spec says whether the connection uses prepared statements (AR's
# default: every preparable query becomes a named statement "a1", "a2", …,
# and the statement pool DEALLOCATEs the oldest beyond statement_limit) or
# not (values quoted into the SQL as literals, sent with exec_params and no
# parameters).
#
# What a model of a pgveil-encrypted table needs (each point is a step
# below, which fails if it stops being true):
#
# 1. No `attribute` declarations. AR reflects the schema from the catalog,
#    and through pgveil pg_attribute describes an encrypted column with its
#    logical type (format_type says text, date, bigint), so AR types
#    users.email, phone and ssn as text (:text), birth_date as :date and
#    api_token as bigint (:integer, limit 8), with the same type objects
#    as orgs' plain text and bigint columns. Values round-trip as they are
#    written, with and without prepared statements: text as a UTF-8
#    String (backslashes intact), a Date, an Integer (an 8-digit one too);
#    lookups by an encrypted value (blind index) find the row. Blind-index
#    columns are what they are stored as: bytea (:binary).
# 2. Nothing about the tenant. users has a key_context (org_id: one data
#    key per tenant), and AR's `save`/`update!` send only the changed
#    columns and `WHERE "users"."id" = $n`, update_column(s) likewise,
#    update_all the relation's conditions: pgveil looks the tenant up
#    (SELECT DISTINCT org_id FROM users WHERE <the UPDATE's WHERE>, on the
#    same connection, in the same transaction), seals the values under
#    that tenant's key and sends the UPDATE with `AND org_id = <tenant>`
#    added to its WHERE. An UPDATE whose rows span several tenants (an
#    update_all over two orgs' rows) is refused, 0A000 "more than one
#    tenant", and changes nothing; one matching no row updates 0. Naming
#    the tenant (`where(org_id: …)`, org_id in SET) still works and
#    spares the lookup.
# 3. `self.ignored_columns = %w[email_bidx ssn_bidx]` (optional): AR
#    then lists the columns it selects instead of "users".*, so blind
#    indexes are not fetched, and never written back. Without it a record
#    loads its blind indexes (32-byte binary Strings), and a `dup` of it
#    writes them in its INSERT beside their columns: pgveil puts the
#    indexes it computes there (the dup's values are not sent).
#
# Otherwise Rails' usual calls work through pgveil: create! (INSERT …
# RETURNING "id"), find_by/where/exists? by an encrypted column (IN, IS
# NULL), pluck, count, find_each, reload, destroy, transactions and
# savepoints (a refusal inside `transaction(requires_new: true)` rolls back
# the savepoint only), insert_all (ON CONFLICT DO NOTHING), upsert_all by
# primary key or `unique_by: :email_bidx`, has_many keyed by an encrypted
# column and joins on it. ORDER BY an encrypted column is refused (0A000).

require_relative "enc_common"

begin
  require "pg"
  # What this program asserts is ActiveRecord 6.1's behaviour (Debian's).
  gem "activerecord", "~> 6.1.0"
  require "active_record"
  require "active_record/connection_adapters/postgresql_adapter"
rescue LoadError => e
  puts "FAIL (driver): cannot load ActiveRecord 6.1 (apt-get install ruby-pg ruby-activerecord): #{e.message}"
  exit 1
end

include EncCommon

S = EncCommon.load_spec
PREPARED = S["prepared_statements"]

# Counts the statements AR's pool drops (with SQL DEALLOCATE), calling the
# adapter's own code.
module CountDealloc
  DROPPED = []

  private

  def dealloc(key)
    DROPPED << key
    super
  end
end
ActiveRecord::ConnectionAdapters::PostgreSQLAdapter::StatementPool.prepend(CountDealloc)

ActiveRecord::Base.belongs_to_required_by_default = true # as in a Rails app
CONFIG = {
  adapter: "postgresql", host: S["host"], port: S["port"], username: S["user"], password: S["password"],
  database: S["dbname"], application_name: "enc_activerecord",
  prepared_statements: PREPARED, statement_limit: S["statement_limit"]
}.freeze
ActiveRecord::Base.establish_connection(CONFIG)

class Org < ActiveRecord::Base
  has_many :users
end

# The model a Rails application needs for users behind pgveil: no
# attribute declarations (see the header).
class User < ActiveRecord::Base
  self.ignored_columns = %w[email_bidx ssn_bidx]
  belongs_to :org
  has_many :contacts, primary_key: :email, foreign_key: :email
end

class Contact < ActiveRecord::Base
  self.ignored_columns = %w[email_bidx]
  belongs_to :org
end

# users as AR's schema reflection alone makes it: no ignored_columns.
class BareUser < ActiveRecord::Base
  self.table_name = "users"
end

def attrs(org, u)
  { org_id: org, name: u["name"], email: u["email"], phone: u["phone"], ssn: u["ssn"],
    birth_date: date_arg(u["birth_date"]), api_token: int_arg(u["api_token"]) }
end

def urow(x)
  [x.name, x.email, x.phone, x.ssn, x.birth_date, x.api_token]
end

# pool_keys are the names of the statements AR's pool holds ("a1", …).
def pool_keys
  pool = ActiveRecord::Base.connection.instance_variable_get(:@statements)
  (pool.instance_variable_get(:@cache)[Process.pid] || {}).values
end

# updates_sent runs the block and returns the SQL of the UPDATEs AR sent
# in it (refused ones too).
def updates_sent
  sent = []
  sub = ActiveSupport::Notifications.subscribe("sql.active_record") do |*, payload|
    sent << payload[:sql] if payload[:sql].start_with?("UPDATE")
  end
  yield
  sent
ensure
  ActiveSupport::Notifications.unsubscribe(sub) if sub
end

# untenanted checks that AR sent n UPDATEs of users, none naming org_id
# (the table's key_context): each had its tenant looked up by pgveil.
def untenanted(what, sent, n = 1)
  return if sent.length == n && sent.all? { |q| q.start_with?('UPDATE "users" SET') && !q.include?("org_id") }

  raise StepFailure, "#{what}: AR sent #{sent.map { |q| q[0, 200] }.inspect}, want #{n} UPDATE of users without org_id"
end

def check_rows(what, got, want)
  msg = Reporter.mismatch(got, want)
  raise StepFailure, "#{what}: #{msg}" if msg
end

# Every step's block raises StepFailure (or an error) when it fails.
def scenario(r, s)
  org = s["org"]
  u = s["users"]
  users = []

  r.step("schema reflection: encrypted columns have their logical types (no declarations)",
         want: [%w[id bigint integer 8], %w[org_id bigint integer 8], ["name", "text", "text", nil],
                ["email", "text", "text", nil], ["phone", "text", "text", nil], ["ssn", "text", "text", nil],
                ["birth_date", "date", "date", nil], %w[api_token bigint integer 8],
                ["created_at", "timestamp with time zone", "datetime", nil]]) do
    rows = User.columns.map do |c|
      t = User.type_for_attribute(c.name)
      if t.type != c.type || t.limit != c.limit
        raise StepFailure, "#{c.name}: column :#{c.type} (#{c.limit.inspect}), attribute :#{t.type} (#{t.limit.inspect})"
      end

      [c.name, c.sql_type, c.type.to_s, c.limit]
    end
    # Typed as AR types orgs' plain text and bigint columns.
    { "email" => "name", "phone" => "name", "ssn" => "name", "api_token" => "id" }.each do |col, plain|
      a = User.type_for_attribute(col)
      b = Org.type_for_attribute(plain)
      next if a.class == b.class && a.type == b.type && a.limit == b.limit

      raise StepFailure, "users.#{col}: #{a.class} :#{a.type} #{a.limit.inspect}, orgs.#{plain}: #{b.class} :#{b.type} #{b.limit.inspect}"
    end
    [rows, nil]
  end
  r.step("schema reflection: blind indexes are bytea (:binary), contacts' encrypted columns text",
         want: [%w[users.email_bidx bytea binary], %w[users.ssn_bidx bytea binary],
                %w[contacts.email text text], %w[contacts.note text text]]) do
    rows = [[BareUser, %w[email_bidx ssn_bidx]], [Contact, %w[email note]]].flat_map do |model, names|
      names.map { |n| ["#{model.table_name}.#{n}", model.columns_hash[n].sql_type, model.columns_hash[n].type.to_s] }
    end
    check("User's blind-index columns", User.column_names & %w[email_bidx ssn_bidx], [])
    [rows, nil]
  end

  r.step("create! (INSERT … RETURNING \"id\")") do
    u.each { |x| users << User.create!(attrs(org, x)) }
    ids = users.map(&:id)
    raise StepFailure, "ids #{ids.inspect}" unless ids.all?(Integer) && ids == ids.sort && ids.uniq.length == u.length

    [nil, nil]
  end
  r.step("reload: the values written, as String, Date, Integer") do
    check_rows("reloaded", users.map { |x| urow(x.reload) }, u.map { |x| user_row(x) })
    x = users[0]
    unless x.email.encoding == Encoding::UTF_8 && x.birth_date.is_a?(Date) && x.api_token.is_a?(Integer)
      raise StepFailure, "types: #{x.email.encoding} #{x.birth_date.class} #{x.api_token.class}"
    end
    [nil, nil]
  end
  find_key = nil
  r.step("find_by(email:) (normalize)", want: [user_row(u[0])]) do
    before = pool_keys
    x = User.find_by(email: s["lookup_email"])
    find_key = (pool_keys - before).first
    raise StepFailure, "AR did not prepare find_by" if PREPARED && find_key.nil?

    [[urow(x)], nil]
  end
  r.step("find_by(email:) of an absent email is nil") do
    check("find_by", User.find_by(email: s["in_emails"][2]).inspect, "nil")
    [nil, nil]
  end
  r.step("org.users.find_by(email:) (association)", want: [user_row(u[1])]) do
    [[urow(Org.find(org).users.find_by(email: s["in_emails"][1]))], nil]
  end
  r.step("where(email: [a, b, c]) (IN)", want: s["in_expect"].map { |e| [e] }) do
    [User.where(email: s["in_emails"]).order(:id).pluck(:email).map { |e| [e] }, nil]
  end
  r.step("where(email: [a, nil]) (IN … OR IS NULL)", want: [[u[0]["name"]], [u[2]["name"]]]) do
    [User.where(org_id: org, email: [s["in_emails"][0], nil]).order(:id).pluck(:name).map { |n| [n] }, nil]
  end
  r.step("where(ssn:) 1 MiB blind-index lookup", want: [[s["big_name"]]]) do
    [User.where(ssn: s["big_ssn"]).pluck(:name).map { |n| [n] }, nil]
  end
  r.step("exists?(email:)") do
    check("exists? of a stored email", User.exists?(email: s["any_emails"][0]).to_s, "true")
    check("exists? of an absent email", User.exists?(email: s["any_emails"][2]).to_s, "false")
    [nil, nil]
  end
  r.step("where(phone: nil), where.not(email: nil)") do
    check("phone IS NULL", User.where(org_id: org, phone: nil).order(:id).pluck(:name), s["null_phone_names"])
    check("email IS NOT NULL", User.where(org_id: org).where.not(email: nil).count.to_s, (u.length - s["null_email_names"].length).to_s)
    [nil, nil]
  end
  r.step("pluck(:email, :birth_date, :api_token).order(:id)", want: u.map { |x| [x["email"], x["birth_date"], x["api_token"]] }) do
    [User.where(org_id: org).order(:id).pluck(:email, :birth_date, :api_token), nil]
  end
  r.step("count") do
    check("count", User.where(org_id: org).count.to_s, u.length.to_s)
    [nil, nil]
  end
  r.step("find_each(batch_size: 2)", want: u.map { |x| user_row(x) }) do
    rows = []
    User.where(org_id: org).find_each(batch_size: 2) { |x| rows << urow(x) }
    [rows, nil]
  end
  r.step("order(:email) is refused (0A000)") do
    refused("0A000", "public.users.email") { User.where(org_id: org).order(:email).to_a }
    [nil, nil]
  end
  r.step("find_by(email:) again, prepared anew after AR deallocated it", want: [user_row(u[0])]) do
    raise StepFailure, "AR has not deallocated #{find_key} (#{CountDealloc::DROPPED.inspect})" if PREPARED && !CountDealloc::DROPPED.include?(find_key)

    before = pool_keys
    x = User.find_by(email: s["lookup_email"])
    raise StepFailure, "AR did not prepare find_by again" if PREPARED && (pool_keys - before).length != 1

    [[urow(x)], nil]
  end

  # None of these UPDATEs names the tenant (updates_sent checks what AR
  # sent): pgveil looks it up, seals under its key and adds it to the
  # WHERE. The values are read back through AR here and through pgx by
  # the Go test, which opens them under the row's tenant.
  r.step("update! of encrypted attributes, without the tenant") do
    x = users[0]
    untenanted("update!", updates_sent { x.update!(email: s["new_email"], phone: s["new_phone"]) })
    check("reloaded", urow(x.reload), user_row(s["final"][0]))
    check("found by the new email", User.find_by(email: s["new_lookup"])&.id.to_s, x.id.to_s)
    check("found by the old email", User.find_by(email: s["old_email"]).inspect, "nil")
    [nil, nil]
  end
  r.step("save of a changed encrypted attribute, without the tenant") do
    y = User.find(users[1].id)
    y.phone = s["save_phone"]
    saved = nil
    untenanted("save", updates_sent { saved = y.save })
    check("save", saved.to_s, "true")
    check("reloaded", urow(users[1].reload), user_row(s["ar_final"][1]))
    [nil, nil]
  end
  r.step("update_column and update_columns of encrypted attributes, without the tenant") do
    x = users[2]
    sent = updates_sent do
      check("update_column", x.update_column(:ssn, s["column_ssn"]).to_s, "true")
      check("update_columns", x.update_columns(phone: s["columns_phone"], birth_date: date_arg(s["columns_birth"])).to_s, "true")
    end
    untenanted("update_column(s)", sent, 2)
    want = user_row(s["users"][2].merge("ssn" => s["column_ssn"], "phone" => s["columns_phone"], "birth_date" => s["columns_birth"]))
    check("reloaded", urow(x.reload), want)
    check("found by the ssn", User.where(ssn: s["column_ssn"]).pluck(:id), [x.id.to_s])
    [nil, nil]
  end
  r.step("update_all(phone:) by name within the tenant") do
    n = User.where(org_id: org, name: s["update_all_name"]).update_all(phone: s["update_all_phone"])
    check("rows", n.to_s, "1")
    check("phone", users[3].reload.phone, s["update_all_phone"])
    [nil, nil]
  end
  r.step("update_all(email:) by id, without the tenant") do
    x = users[3]
    n = nil
    untenanted("update_all", updates_sent { n = User.where(id: x.id).update_all(email: s["update_all_email"]) })
    check("rows", n.to_s, "1")
    check("reloaded", urow(x.reload), user_row(s["ar_final"][3]))
    check("found by the new email", User.find_by(email: s["update_all_lookup"])&.id.to_s, x.id.to_s)
    check("found by the old email", User.exists?(email: u[3]["email"]).to_s, "false")
    [nil, nil]
  end
  r.step("update_all(email:) by an encrypted column (blind index), without the tenant") do
    x = users[4]
    n = nil
    sent = updates_sent { n = User.where(email: s["by_email_lookup"]).update_all(email: s["by_email_email"]) }
    untenanted("update_all", sent)
    check("rows", n.to_s, "1")
    check("reloaded", urow(x.reload), user_row(u[4].merge("email" => s["by_email_email"])))
    check("found by the new email", User.where(email: s["by_email_email"].upcase).pluck(:id), [x.id.to_s])
    check("found by the old email", User.exists?(email: s["by_email_lookup"]).to_s, "false")
    [nil, nil]
  end
  r.step("update_all(api_token:) of two rows of the tenant, without it") do
    n = nil
    ids = [users[2].id, users[4].id]
    sent = updates_sent { n = User.where(id: ids).update_all(api_token: int_arg(s["multi_token"])) }
    untenanted("update_all", sent)
    check("rows", n.to_s, "2")
    check("api_tokens", User.where(id: ids).order(:id).pluck(:id, :api_token), ids.map { |id| [id.to_s, s["multi_token"]] })
    [nil, nil]
  end
  other = nil
  r.step("create! and update! of a row of another tenant, without the tenant") do
    other = User.create!(attrs(s["other_org"], s["other"]))
    untenanted("update!", updates_sent { other.update!(phone: s["other_phone"]) })
    check("reloaded", urow(other.reload), user_row(s["other_final"][0]))
    check("org_id", other.org_id.to_s, s["other_org"].to_s)
    [nil, nil]
  end
  r.step("update_all over rows of two tenants is refused (0A000), nothing changes") do
    ids = [users[3].id, other.id]
    sent = updates_sent do
      refused("0A000", "more than one tenant") { User.where(id: ids).update_all(phone: s["refused_phone"]) }
    end
    untenanted("update_all", sent)
    check("this tenant's row", urow(users[3].reload), user_row(s["ar_final"][3]))
    check("the other tenant's row", urow(other.reload), user_row(s["other_final"][0]))
    [nil, nil]
  end
  r.step("update_all matching no row returns 0 (by id, by an absent email)") do
    sent = updates_sent do
      check("by id", User.where(id: -1).update_all(phone: s["refused_phone"]).to_s, "0")
      check("by email", User.where(email: s["in_emails"][2]).update_all(phone: s["refused_phone"]).to_s, "0")
    end
    untenanted("update_all", sent, 2)
    check("rows with the phone", User.where(org_id: [org, s["other_org"]]).pluck(:phone).include?(s["refused_phone"]).to_s, "false")
    [nil, nil]
  end

  up = s["upsert"]
  bulk_id = nil
  up_id = nil
  r.step("insert_all (VALUES of two rows, ON CONFLICT DO NOTHING, RETURNING)",
         want: [[up["email"], up["phone"]], [s["bulk"]["email"], s["bulk"]["phone"]]]) do
    res = User.insert_all([attrs(org, up), attrs(org, s["bulk"])], returning: %w[id email phone])
    up_id, bulk_id = res.rows.map(&:first)
    [res.rows.map { |row| row[1, 2] }, nil]
  end
  r.step("insert_all of a conflicting email inserts nothing", want: []) do
    res = User.insert_all([attrs(org, up).merge(email: s["upsert_variant"], phone: s["upsert_phone2"])], returning: %w[id])
    [res.rows, nil]
  end
  r.step("upsert_all unique_by: :email_bidx (ON CONFLICT on the blind index)",
         want: [[up_id.to_s, s["upsert_variant"], s["upsert_phone2"]]]) do
    res = User.upsert_all([attrs(org, up).merge(email: s["upsert_variant"], phone: s["upsert_phone2"])],
                          unique_by: :email_bidx, returning: %w[id email phone])
    [res.rows, nil]
  end
  r.step("upsert_all by primary key", want: [user_row(s["bulk_upsert"])]) do
    User.upsert_all([attrs(org, s["bulk_upsert"]).merge(id: bulk_id)])
    [[urow(User.find(bulk_id))], nil]
  end

  r.step("transaction rolled back (ActiveRecord::Rollback)") do
    before = User.where(org_id: org).count
    User.transaction do
      User.create!(attrs(org, s["tx_user"]))
      raise ActiveRecord::Rollback
    end
    check("count", User.where(org_id: org).count.to_s, before.to_s)
    check("exists?", User.exists?(email: s["tx_user"]["email"]).to_s, "false")
    [nil, nil]
  end
  r.step("a refusal inside transaction(requires_new: true) rolls back the savepoint only") do
    n = nil
    User.transaction do
      n = Org.find(org).users.create!(attrs(org, s["nested"]).except(:org_id))
      refused("0A000", "public.users.email") do
        User.transaction(requires_new: true) { User.where(org_id: org).order(:email).first }
      end
      n.update!(phone: s["nested_phone"])
    end
    check("committed", urow(n.reload)[2], s["nested_phone"])
    [nil, nil]
  end
  d = s["doomed"]
  r.step("destroy") do
    x = User.create!(attrs(org, d))
    x.destroy
    raise StepFailure, "not destroyed" unless x.destroyed?
    check("find_by", User.find_by(email: s["doomed_lookup"]).inspect, "nil")
    [nil, nil]
  end

  r.step("Contact.create!") do
    s["contacts"].each { |c| Contact.create!(org_id: org, email: c["email"], note: c["note"]) }
    check("count", Contact.where(org_id: org).count.to_s, s["contacts"].length.to_s)
    [nil, nil]
  end
  r.step("has_many keyed by an encrypted column (user.contacts)") do
    check("contacts of u2", users[1].contacts.order(:id).pluck(:note), [s["contacts"][0]["note"]])
    check("contacts of u1", users[0].contacts.order(:id).pluck(:note), [s["contacts"][1]["note"]])
    [nil, nil]
  end
  r.step("joins(:contacts) on the shared blind index", want: s["join_expect"]) do
    rows = User.joins(:contacts).where(org_id: org, contacts: { org_id: org }).order("users.id", "contacts.id")
               .pluck("users.name", "users.email", "contacts.email", "contacts.note")
    [rows, nil]
  end
  reflected(r, s, users)
  r.step("final state", want: s["ar_final"].map { |x| user_row(x) }) do
    check("the other tenant's users", User.where(org_id: s["other_org"]).order(:id).map { |x| urow(x) },
          s["other_final"].map { |x| user_row(x) })
    [User.where(org_id: org).order(:id).map { |x| urow(x) }, nil]
  end

  statements(r, s)
end

# A row of every logical type written and read by the models as AR
# reflects them (the row stays: the Go test reads it back through pgveil
# and checks it at rest), and what ignored_columns changes (see the
# header).
def reflected(r, s, users)
  org = s["org"]
  raw = s["raw"]
  x = nil
  r.step("create! and reload: text with a backslash, an 8-digit Integer, a Date", want: [user_row(raw)]) do
    x = User.create!(attrs(org, raw))
    x.reload
    got = [x.email, x.phone, x.ssn, x.birth_date, x.api_token].map { |v| v.is_a?(String) ? v.encoding.to_s : v.class.to_s }
    check("classes", got, %w[UTF-8 UTF-8 UTF-8 Date Integer])
    check("phone (a backslash, as written)", x.phone.include?("\\x41").to_s, "true")
    [[urow(x)], nil]
  end
  r.step("find_by(email:), where(ssn:), exists?, pluck by the row's values",
         want: [[raw["phone"], raw["birth_date"], raw["api_token"]]]) do
    check("find_by(email:) upper-cased", User.find_by(email: raw["email"].upcase)&.id, x.id.to_s)
    check("where(ssn:)", User.where(ssn: raw["ssn"]).pluck(:id), [x.id.to_s])
    check("exists?(email:)", User.exists?(email: raw["email"]).to_s, "true")
    [User.where(email: raw["email"]).pluck(:phone, :birth_date, :api_token), nil]
  end
  r.step("without ignored_columns: the same values, blind indexes as 32-byte binary Strings", want: [user_row(raw)]) do
    b = BareUser.find(x.id)
    check("blind indexes", [b.email_bidx, b.ssn_bidx].map { |v| "#{v.encoding} #{v.bytesize}" }, ["ASCII-8BIT 32", "ASCII-8BIT 32"])
    # The email index key is shared: u2's email_bidx is c1's (u2's email upper-cased).
    u2 = BareUser.find(users[1].id).email_bidx
    c1 = Contact.where(org_id: org, email: s["contacts"][0]["email"]).pluck(:email_bidx)
    check("u2's email_bidx is c1's", [u2.bytesize.to_s, (c1 == [u2]).to_s], %w[32 true])
    [[urow(b)], nil]
  end
  r.step("without ignored_columns: a dup writes its blind indexes beside their columns; pgveil writes its own") do
    dup_email = s["raw_dup_email"]
    User.transaction do
      d = BareUser.find(x.id).dup
      d.email = dup_email
      d.save!
      check("found by the dup's email", User.find_by(email: dup_email.downcase)&.id, d.id.to_s)
      check("found by the ssn", User.where(ssn: raw["ssn"]).order(:id).pluck(:id), [x.id.to_s, d.id.to_s])
      check("the dup's email_bidx is not the original's", (BareUser.find(d.id).email_bidx == BareUser.find(x.id).email_bidx).to_s, "false")
      raise ActiveRecord::Rollback
    end
    check("rows with the email", User.where(email: raw["email"]).count.to_s, "1")
    [nil, nil]
  end
  r.step("with ignored_columns: a dup is saved, and pgveil computes its blind indexes") do
    dup_email = s["raw_dup_email"]
    User.transaction do
      d = User.find(x.id).dup
      d.email = dup_email
      d.save!
      check("found by the dup's email", User.find_by(email: dup_email.downcase)&.id, d.id.to_s)
      check("found by the ssn", User.where(ssn: raw["ssn"]).order(:id).pluck(:id), [x.id.to_s, d.id.to_s])
      check("the dup reloaded", urow(d.reload), user_row(raw.merge("email" => dup_email)))
      raise ActiveRecord::Rollback
    end
    check("rolled back", User.exists?(email: dup_email).to_s, "false")
    [nil, nil]
  end
end

# AR's statement pool and what the server holds for the session.
def statements(r, s)
  conn = ActiveRecord::Base.connection
  pool = conn.instance_variable_get(:@statements)
  if PREPARED
    r.step("statement pool: AR prepared more than statement_limit and DEALLOCATEd the oldest") do
      made = pool.instance_variable_get(:@counter)
      if made <= s["statement_limit"] || CountDealloc::DROPPED.empty? || pool.length > s["statement_limit"]
        raise StepFailure, "AR prepared #{made}, holds #{pool.length}, deallocated #{CountDealloc::DROPPED.inspect}"
      end
      [nil, nil]
    end
  end
  # One upstream statement per statement AR holds, and at most one for the
  # unnamed statement (pgveil prepares statements on encrypted tables under
  # names of its own; __pgveil_refuse is its one statement for refusals).
  # pgveil also keeps its tenant lookups of UPDATEs with parameters
  # prepared (SELECT DISTINCT org_id …, one per UPDATE shape, at most 64):
  # counted apart, a few here.
  r.step("upstream prepared statements: one per AR statement") do
    lookup = "SELECT DISTINCT users.org_id FROM %"
    held = conn.select_rows("SELECT name, left(statement, 60) FROM pg_prepared_statements " \
                            "WHERE name <> '__pgveil_refuse' AND statement NOT LIKE '#{lookup}' ORDER BY prepare_time")
    if held.length < pool.length || held.length > pool.length + 1
      raise StepFailure, "the server holds #{held.length} prepared statements for this session, " \
                         "want #{pool.length} and at most one unnamed: #{held.inspect}"
    end
    lookups = conn.select_value("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '#{lookup}'").to_i
    if lookups > 8
      raise StepFailure, "the server holds #{lookups} tenant lookups for this session, want a few (one per UPDATE shape)"
    end
    [nil, nil]
  end
end

# A Rails table has updated_at (t.timestamps): the phase adds it with a
# migration through pgveil (as the tables' owner), then checks what AR
# 6.1 does with it. upsert_all's DO UPDATE keeps updated_at when no
# column changes, with `CASE WHEN ("users"."col" IS NOT DISTINCT FROM
# excluded."col" AND …)` over every column it updates: pgveil compares
# encrypted columns by blind index, refuses the statement (0A000) when one
# has none, and (normalize: lowercase, trim) counts a change of case as no
# change. Giving updated_at in the rows leaves the CASE out.
def timestamps(r, s)
  org = s["org"]
  u1 = s["users"][0]
  up = s["upsert"]
  r.step("migration through pgveil: add_column :users, :updated_at") do
    ActiveRecord::Base.establish_connection(CONFIG.merge(username: s["owner_user"], password: s["owner_password"]))
    ActiveRecord::Base.connection.add_column(:users, :updated_at, :datetime)
    # This session's next statement waits for pgveil's catalog reload
    # after the DDL, so the application's session plans with the column.
    ActiveRecord::Base.connection.select_value("SELECT count(*) FROM users")
    ActiveRecord::Base.establish_connection(CONFIG)
    raise StepFailure, "no updated_at in #{User.column_names.inspect}" unless User.column_names.include?("updated_at")

    [nil, nil]
  end
  x = nil
  r.step("create! and update! set updated_at") do
    x = User.create!(attrs(org, u1))
    created = x.reload.updated_at
    raise StepFailure, "updated_at #{created.inspect} after create!" unless created.is_a?(Time)

    x.update!(phone: s["new_phone"])
    check("phone", x.reload.phone, s["new_phone"])
    raise StepFailure, "updated_at #{x.updated_at.inspect}, was #{created.inspect}" unless x.updated_at >= created

    [nil, nil]
  end
  r.step("upsert_all touching an encrypted column without a blind index is refused (0A000)") do
    refused("0A000", "public.users.phone", "blind index") do
      User.upsert_all([{ org_id: org, name: up["name"], email: up["email"], phone: up["phone"] }], unique_by: :email_bidx)
    end
    [nil, nil]
  end
  up_id = nil
  r.step("upsert_all with updated_at given (no CASE): insert, then update by the blind index",
         want: [[up["email"], up["phone"]], [s["upsert_variant"], s["upsert_phone2"]]]) do
    rows = []
    [[up["email"], up["phone"]], [s["upsert_variant"], s["upsert_phone2"]]].each do |email, phone|
      res = User.upsert_all([{ org_id: org, name: up["name"], email: email, phone: phone, updated_at: Time.now.utc }],
                            unique_by: :email_bidx, returning: %w[id email phone])
      up_id = res.rows[0][0]
      rows << res.rows[0][1, 2]
    end
    [rows, nil]
  end
  r.step("upsert_all of blind-indexed columns only: a change of case keeps updated_at") do
    before = User.find(up_id).updated_at
    User.upsert_all([{ org_id: org, name: up["name"], email: up["email"] }], unique_by: :email_bidx)
    y = User.find(up_id)
    check("email", y.email, up["email"])
    raise StepFailure, "updated_at #{y.updated_at.inspect}, was #{before.inspect}" unless y.updated_at == before

    [nil, nil]
  end
  r.step("final state", want: s["ar_final"].map { |v| user_row(v) }) do
    [User.where(org_id: org).order(:id).map { |v| urow(v) }, nil]
  end
end

EncCommon.run do |r|
  if EncCommon.phase == "timestamps"
    timestamps(r, S)
  else
    scenario(r, S)
  end
end
