package integration

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestEncWirePortals drives the extended protocol by hand, as one
// pipeline before a single Sync: a named statement described, a named
// portal bound with mixed result formats (email and birth_date binary),
// executed with a row limit three times (PortalSuspended twice), closed,
// then an unnamed statement and portal. Every encrypted field arrives
// decrypted in the format the client asked for, and the descriptions
// report the logical types.
func TestEncWirePortals(t *testing.T) {
	relayLeakCheck(t)
	const org = 121
	p := startEncProxy(t, org)
	ctx := testCtx(t, time.Minute)
	conn := connectPgx(t, ctx, p.url())
	type row struct{ name, email, phone, birth string }
	var rows []row
	for i := 1; i <= 5; i++ {
		r := row{fmt.Sprintf("w%d", i), fmt.Sprintf("Wire.%d-7781@Example.org", i), fmt.Sprintf("ph-wire-%d-7781 ü", i), fmt.Sprintf("1990-01-%02d", i)}
		rows = append(rows, r)
		p.remember(r.email, r.phone)
		if _, err := conn.Exec(ctx, "INSERT INTO users (org_id, name, email, phone, birth_date) VALUES ($1, $2, $3, $4, $5)",
			int64(org), r.name, r.email, r.phone, r.birth); err != nil {
			t.Fatal(err)
		}
	}

	pc := conn.PgConn()
	fe := pc.Frontend()
	fe.Send(&pgproto3.Parse{Name: "s1", Query: "SELECT name, email, phone, birth_date FROM users WHERE org_id = $1 ORDER BY id"})
	fe.Send(&pgproto3.Describe{ObjectType: 'S', Name: "s1"})
	fe.Send(&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1", Parameters: [][]byte{[]byte(fmt.Sprint(org))},
		ResultFormatCodes: []int16{0, 1, 0, 1}})
	fe.Send(&pgproto3.Describe{ObjectType: 'P', Name: "p1"})
	fe.Send(&pgproto3.Execute{Portal: "p1", MaxRows: 2})
	fe.Send(&pgproto3.Execute{Portal: "p1", MaxRows: 2})
	fe.Send(&pgproto3.Execute{Portal: "p1", MaxRows: 0})
	fe.Send(&pgproto3.Close{ObjectType: 'P', Name: "p1"})
	fe.Send(&pgproto3.Parse{Query: "SELECT email FROM users WHERE email = $1"})
	fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte(strings.ToUpper(rows[2].email))}})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Close{ObjectType: 'S', Name: "s1"})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}

	var trace []string
	var data [][][]byte
	for {
		msg, err := pc.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", trace, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ParameterDescription:
			trace = append(trace, fmt.Sprintf("ParameterDescription%v", m.ParameterOIDs))
		case *pgproto3.RowDescription:
			var f []string
			for _, fd := range m.Fields {
				f = append(f, fmt.Sprintf("%s:%d/%d", fd.Name, fd.DataTypeOID, fd.Format))
			}
			trace = append(trace, "RowDescription("+strings.Join(f, ",")+")")
		case *pgproto3.DataRow:
			trace = append(trace, "DataRow")
			var vals [][]byte
			for _, v := range m.Values {
				vals = append(vals, append([]byte(nil), v...))
			}
			data = append(data, vals)
		case *pgproto3.CommandComplete:
			trace = append(trace, "CommandComplete "+string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			trace = append(trace, "ErrorResponse "+m.Code+" "+m.Message)
		default:
			trace = append(trace, strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3."))
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	want := []string{
		"ParseComplete", "ParameterDescription[20]",
		"RowDescription(name:25/0,email:25/0,phone:25/0,birth_date:1082/0)",
		"BindComplete",
		"RowDescription(name:25/0,email:25/1,phone:25/0,birth_date:1082/1)",
		"DataRow", "DataRow", "PortalSuspended", "DataRow", "DataRow", "PortalSuspended", "DataRow", "CommandComplete SELECT 1",
		"CloseComplete",
		"ParseComplete", "BindComplete", "DataRow", "CommandComplete SELECT 1",
		"CloseComplete", "ReadyForQuery",
	}
	if strings.Join(trace, "\n") != strings.Join(want, "\n") {
		t.Fatalf("responses:\n got: %s\nwant: %s", strings.Join(trace, " | "), strings.Join(want, " | "))
	}
	epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, r := range rows {
		d := data[i]
		days := int32(binary.BigEndian.Uint32(d[3]))
		birth := epoch.AddDate(0, 0, int(days)).Format("2006-01-02")
		if string(d[0]) != r.name || string(d[1]) != r.email || string(d[2]) != r.phone || len(d[3]) != 4 || birth != r.birth {
			t.Errorf("row %d through a suspended portal: %q %q %q %s, want %+v", i, d[0], d[1], d[2], birth, r)
		}
	}
	if got := string(data[5][0]); got != rows[2].email {
		t.Errorf("unnamed statement after the portal: %q, want %q", got, rows[2].email)
	}
	// The connection is in step: an ordinary query works.
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM users WHERE org_id = $1", int64(org)).Scan(&n); err != nil || n != 5 {
		t.Errorf("after the pipeline: %d %v", n, err)
	}
	verifyAtRest(t, ctx, []string{rows[0].email, rows[0].phone, rows[4].email, rows[4].phone})
}
