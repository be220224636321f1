package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The planner handles the node types it understands by name and everything
// else through these reflective walkers, so that a node type it has never
// heard of (new syntax, rare clauses) is still searched for references to
// encrypted columns instead of being skipped: fail closed by construction.

// eachChild calls fn for every *pg.Node directly below n, looking through
// intermediate messages that are not Nodes (TypeName, WindowDef, Alias…).
func eachChild(n *pg.Node, fn func(*pg.Node)) {
	if n == nil || n.Node == nil {
		return
	}
	m := n.ProtoReflect()
	// A Node is a oneof wrapper: descend into its one populated field.
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() != nil {
			eachNodeIn(v.Message(), fn)
		}
		return true
	})
}

// eachNodeIn calls fn for every *pg.Node field (or list element) of m,
// descending through non-Node messages.
func eachNodeIn(m protoreflect.Message, fn func(*pg.Node)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitMsg(l.Get(i).Message(), fn)
			}
			return true
		}
		visitMsg(v.Message(), fn)
		return true
	})
}

func visitMsg(m protoreflect.Message, fn func(*pg.Node)) {
	if n, ok := m.Interface().(*pg.Node); ok {
		fn(n)
		return
	}
	eachNodeIn(m, fn)
}

// walkAll calls fn for n and every Node below it, depth first. fn returns
// false to skip a subtree.
func walkAll(n *pg.Node, fn func(*pg.Node) bool) {
	if n == nil || !fn(n) {
		return
	}
	eachChild(n, func(c *pg.Node) { walkAll(c, fn) })
}

// walkMsg is walkAll over every Node below a message that is not a Node
// (a RawStmt, a RangeVar).
func walkMsg(m protoreflect.ProtoMessage, fn func(*pg.Node) bool) {
	eachNodeIn(m.ProtoReflect(), func(c *pg.Node) { walkAll(c, fn) })
}

// nodeName is the node's type name ("SelectStmt"), for messages and Kind.
func nodeName(n *pg.Node) string {
	if n == nil || n.Node == nil {
		return ""
	}
	var name string
	n.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() != nil {
			name = string(fd.Message().Name())
		}
		return false
	})
	return name
}

// str returns a String node's value.
func str(n *pg.Node) (string, bool) {
	if s := n.GetString_(); s != nil {
		return s.Sval, true
	}
	return "", false
}

// names joins a list of String nodes with dots ("pg_catalog.int4").
func names(list []*pg.Node) string {
	parts := make([]string, 0, len(list))
	for _, n := range list {
		if s, ok := str(n); ok {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ".")
}

// lastName is the last String of a qualified name ("lower" of pg_catalog.lower).
func lastName(list []*pg.Node) string {
	if len(list) == 0 {
		return ""
	}
	s, _ := str(list[len(list)-1])
	return s
}

// nodeLocation returns the location a node records, or -1.
func nodeLocation(n *pg.Node) int32 {
	if n == nil || n.Node == nil {
		return -1
	}
	loc := int32(-1)
	n.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		inner := v.Message()
		if f := inner.Descriptor().Fields().ByName("location"); f != nil && f.Kind() == protoreflect.Int32Kind {
			loc = int32(inner.Get(f).Int())
		}
		return false
	})
	return loc
}

// firstLocation is the smallest location recorded anywhere in n's subtree,
// a lower bound for where n's text starts (pg_query records no ends).
func firstLocation(n *pg.Node) int32 {
	best := int32(-1)
	walkAll(n, func(c *pg.Node) bool {
		if l := nodeLocation(c); l >= 0 && (best < 0 || l < best) {
			best = l
		}
		return true
	})
	return best
}
