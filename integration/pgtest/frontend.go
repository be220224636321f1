package pgtest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/jackc/pgproto3/v2"
)

// frontendTypes lists the messages a send directive accepts, with the JSON
// fields each may have besides "Type".
var frontendTypes = map[string]struct {
	fields []string
	new    func() pgproto3.FrontendMessage
}{
	"Query":        {[]string{"String"}, func() pgproto3.FrontendMessage { return &pgproto3.Query{} }},
	"Parse":        {[]string{"Name", "Query", "ParameterOIDs"}, func() pgproto3.FrontendMessage { return &pgproto3.Parse{} }},
	"Bind":         {[]string{"DestinationPortal", "PreparedStatement", "ParameterFormatCodes", "Parameters", "ResultFormatCodes"}, nil},
	"Describe":     {[]string{"ObjectType", "Name"}, func() pgproto3.FrontendMessage { return &pgproto3.Describe{} }},
	"Execute":      {[]string{"Portal", "MaxRows"}, func() pgproto3.FrontendMessage { return &pgproto3.Execute{} }},
	"Sync":         {nil, func() pgproto3.FrontendMessage { return &pgproto3.Sync{} }},
	"Flush":        {nil, func() pgproto3.FrontendMessage { return &pgproto3.Flush{} }},
	"Close":        {[]string{"ObjectType", "Name"}, func() pgproto3.FrontendMessage { return &pgproto3.Close{} }},
	"CopyData":     {[]string{"Data"}, func() pgproto3.FrontendMessage { return &pgproto3.CopyData{} }},
	"CopyDone":     {nil, func() pgproto3.FrontendMessage { return &pgproto3.CopyDone{} }},
	"CopyFail":     {[]string{"Message"}, func() pgproto3.FrontendMessage { return &pgproto3.CopyFail{} }},
	"FunctionCall": {[]string{"Function", "ArgFormatCodes", "Arguments", "ResultFormatCode"}, nil},
	"Terminate":    {nil, func() pgproto3.FrontendMessage { return &pgproto3.Terminate{} }},
}

// encodeFrontend turns one JSON line of a send directive into wire bytes.
func encodeFrontend(line string) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		return nil, fmt.Errorf("%q: %w", line, err)
	}
	var typ string
	if err := json.Unmarshal(fields["Type"], &typ); err != nil {
		return nil, fmt.Errorf("%q: no string Type", line)
	}
	ft, ok := frontendTypes[typ]
	if !ok {
		return nil, fmt.Errorf("%q: unsupported frontend message type %q", line, typ)
	}
	allowed := map[string]bool{"Type": true}
	for _, f := range ft.fields {
		allowed[f] = true
	}
	var unknown []string
	for k := range fields {
		if !allowed[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%q: unknown %s fields %v (allowed: %v)", line, typ, unknown, ft.fields)
	}
	var msg pgproto3.FrontendMessage
	var err error
	switch typ {
	case "Bind":
		msg, err = decodeBind(line)
	case "FunctionCall":
		msg, err = decodeFunctionCall(line)
	default:
		msg = ft.new()
		err = json.Unmarshal([]byte(line), msg)
	}
	if err != nil {
		return nil, fmt.Errorf("%q: %w", line, err)
	}
	return msg.Encode(nil)
}

// decodeBind reads a Bind like pgproto3/v2 does, plus the "repeat" form of
// a parameter value.
func decodeBind(line string) (*pgproto3.Bind, error) {
	var m struct {
		DestinationPortal    string
		PreparedStatement    string
		ParameterFormatCodes []int16
		Parameters           []map[string]string
		ResultFormatCodes    []int16
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil, err
	}
	b := &pgproto3.Bind{
		DestinationPortal:    m.DestinationPortal,
		PreparedStatement:    m.PreparedStatement,
		ParameterFormatCodes: m.ParameterFormatCodes,
		ResultFormatCodes:    m.ResultFormatCodes,
		Parameters:           make([][]byte, len(m.Parameters)),
	}
	for i, p := range m.Parameters {
		v, err := valueFromJSON(p)
		if err != nil {
			return nil, fmt.Errorf("parameter %d: %w", i, err)
		}
		b.Parameters[i] = v
	}
	return b, nil
}

// decodeFunctionCall reads a FunctionCall, whose arguments are written like
// Bind's parameters: {"text":"…"}, {"binary":"<hex>"} or null.
func decodeFunctionCall(line string) (*pgproto3.FunctionCall, error) {
	var m struct {
		Function         uint32
		ArgFormatCodes   []uint16
		Arguments        []map[string]string
		ResultFormatCode uint16
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil, err
	}
	fc := &pgproto3.FunctionCall{Function: m.Function, ArgFormatCodes: m.ArgFormatCodes, ResultFormatCode: m.ResultFormatCode}
	for i, a := range m.Arguments {
		v, err := valueFromJSON(a)
		if err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
		fc.Arguments = append(fc.Arguments, v)
	}
	return fc, nil
}

// valueFromJSON reads pgproto3's value form, where nil is NULL, with one
// extension for large values: "repeat":"N" repeats the bytes N times.
func valueFromJSON(v map[string]string) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	n := 1
	if r, ok := v["repeat"]; ok {
		var err error
		if n, err = strconv.Atoi(r); err != nil || n < 0 || n > 1<<24 {
			return nil, fmt.Errorf("bad repeat %q", r)
		}
	}
	t, isText := v["text"]
	b, isBinary := v["binary"]
	want := 1
	if _, ok := v["repeat"]; ok {
		want = 2
	}
	if len(v) != want || isText == isBinary {
		return nil, fmt.Errorf(`want {"text":…} or {"binary":"<hex>"}, optionally with "repeat":"N", got %v`, v)
	}
	val := []byte(t)
	if isBinary {
		var err error
		if val, err = hex.DecodeString(b); err != nil {
			return nil, err
		}
	}
	return bytes.Repeat(val, n), nil
}
