# frozen_string_literal: true

# Shared parts of the Ruby scenarios of pgveil's encryption suite.
#
# The Go test (integration/enc_ruby_test.go) writes an encSpec as JSON and
# runs a scenario program with Debian's /usr/bin/ruby:
#
#     /usr/bin/ruby pg_scenario.rb SPEC.json scenario|copy
#     /usr/bin/ruby activerecord_scenario.rb SPEC.json scenario|timestamps
#
# Each step prints "ok <step>" or "FAIL <step>: ..."; the exit status is 1
# when any step failed. Values are compared as the spec writes them: dates
# YYYY-MM-DD, integers in decimal, NULL as nil. A String that is not UTF-8
# (a bytea decoded as binary, ASCII-8BIT) never equals a spec value.

require "date"
require "json"

module EncCommon
  module_function

  def load_spec
    JSON.parse(File.read(ARGV[0], encoding: "UTF-8"))
  end

  def phase
    ARGV[1] || "scenario"
  end

  # norm renders a driver value as the spec writes it.
  def norm(v)
    case v
    when nil then nil
    when Date then v.iso8601
    when Integer then v.to_s
    when String
      # US-ASCII: Ruby's own to_s of nil, true, an Integer.
      return v if [Encoding::UTF_8, Encoding::US_ASCII].include?(v.encoding) && v.valid_encoding?

      "#<#{v.encoding} string> #{v.dup.force_encoding(Encoding::BINARY).inspect}"
    else "#<#{v.class}> #{v.inspect}"
    end
  end

  def show(v)
    s = v.inspect
    s.length <= 120 ? s : format("%s... (%d chars)", s[0, 100], v.to_s.length)
  end

  def user_row(u)
    [u["name"], u["email"], u["phone"], u["ssn"], u["birth_date"], u["api_token"]]
  end

  def date_arg(s)
    s && Date.iso8601(s)
  end

  def int_arg(s)
    s && Integer(s, 10)
  end

  # StepFailure is an assertion that did not hold inside a step.
  class StepFailure < StandardError; end

  # Reporter prints one line per step and counts the failures.
  class Reporter
    attr_reader :failures

    def initialize
      @failures = 0
    end

    def failed(name, msg)
      @failures += 1
      puts "FAIL #{name}: #{msg}"
      $stdout.flush
      nil
    end

    def ok(name)
      puts "ok #{name}"
      $stdout.flush
      nil
    end

    # compare checks rows (arrays of driver values) against want (arrays of
    # spec strings) and returns an error message, or nil when they match.
    def self.mismatch(got, want)
      got = got.map { |row| row.map { |v| EncCommon.norm(v) } }
      return format("got %d rows, want %d: %s", got.length, want.length, EncCommon.show(got)) if got.length != want.length

      got.zip(want).each_with_index do |(g, w), i|
        return format("row %d: %d fields, want %d", i, g.length, w.length) if g.length != w.length

        g.zip(w).each_with_index do |(a, b), j|
          return format("row %d field %d: got %s, want %s", i, j, EncCommon.show(a), EncCommon.show(b)) if a != b
        end
      end
      nil
    end

    # step runs the block, which returns [rows or nil, rowcount], and checks
    # it against want (rows of spec strings) and rowcount. A driver or
    # server error, or a StepFailure raised by the block, fails the step;
    # the scenario goes on.
    def step(name, want: nil, rowcount: nil)
      rows, n = yield
      return failed(name, "rowcount #{n.inspect}, want #{rowcount}") if !rowcount.nil? && n != rowcount

      if want
        msg = Reporter.mismatch(rows || [], want)
        return failed(name, msg) if msg
      end
      ok(name)
    rescue StepFailure => e
      failed(name, e.message)
    rescue StandardError => e
      failed(name, EncCommon.describe_error(e))
    end

    def exit!
      exit(@failures.zero? ? 0 : 1)
    end
  end

  # sqlstate is the SQLSTATE of a PG::Error, or of the PG::Error an
  # ActiveRecord error wraps.
  def sqlstate(e)
    while e
      return e.result&.error_field(PG::PG_DIAG_SQLSTATE) if defined?(PG::Error) && e.is_a?(PG::Error) && e.result

      e = e.cause
    end
    nil
  end

  def describe_error(e)
    first = e.message.to_s.strip.lines.first.to_s.strip
    "#{e.class} #{sqlstate(e)}: #{first}"
  end

  # check raises a StepFailure unless got equals want (after norm).
  def check(what, got, want)
    g = got.is_a?(Array) ? got.map { |v| v.is_a?(Array) ? v.map { |x| norm(x) } : norm(v) } : norm(got)
    return if g == want

    raise StepFailure, "#{what}: got #{show(g)}, want #{show(want)}"
  end

  # refused runs the block, which must fail with SQLSTATE code and a
  # message containing every string of says (pgveil's refusals name the
  # table, the column and the remedy; never a value).
  def refused(code, *says)
    yield
  rescue StepFailure
    raise
  rescue StandardError => e
    got = sqlstate(e)
    raise StepFailure, "refused with #{describe_error(e)}, want SQLSTATE #{code}" if got != code

    says.each do |s|
      raise StepFailure, "the refusal does not say #{s.inspect}: #{describe_error(e)}" unless e.message.include?(s)
    end
    nil
  else
    raise StepFailure, "not refused, want SQLSTATE #{code}"
  end

  def run
    r = Reporter.new
    begin
      yield r
    rescue StandardError, ScriptError => e
      puts "FAIL (driver): #{e.class}: #{e.message} | #{(e.backtrace || []).first(8).join(' | ')}"
      exit(1)
    end
    r.exit!
  end

  COLS = "name, email, phone, ssn, birth_date, api_token"
  INS = "INSERT INTO users (org_id, #{COLS}) VALUES "
  ROW = "($1, $2, $3, $4, $5, $6, $7)"
end
