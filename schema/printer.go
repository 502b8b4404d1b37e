package schema

import "strings"

// Format parses src and returns it in canonical form. It checks syntax only,
// like gofmt; use Compile for the semantic checks.
func Format(filename, src string) (string, error) {
	f, err := Parse(filename, src)
	if err != nil {
		return "", err
	}
	return Print(f), nil
}

// Print writes f in canonical form: `use` flags first, then declarations in
// source order separated by blank lines, tab indentation, one member per
// line, the comments written before each declaration kept, and only the
// parentheses that the tree's shape needs (plus parentheses around every
// operand that mixes operators, so precedence never has to be remembered).
// Parse(Print(f)) yields f again, positions aside.
func Print(f *File) string {
	var b strings.Builder
	for _, u := range f.Uses {
		printDoc(&b, u.Doc, "")
		b.WriteString("use ")
		b.WriteString(u.Flag)
		printTrailing(&b, u.Comment)
	}
	for i, d := range f.Decls {
		if i > 0 || len(f.Uses) > 0 {
			b.WriteByte('\n')
		}
		switch d := d.(type) {
		case *DefinitionDecl:
			printDefinition(&b, d)
		case *CaveatDecl:
			printCaveat(&b, d)
		}
	}
	if len(f.EndComments) > 0 {
		if len(f.Uses) > 0 || len(f.Decls) > 0 {
			b.WriteByte('\n')
		}
		printDoc(&b, f.EndComments, "")
	}
	return b.String()
}

// printTrailing ends a line, writing first the comments that trail it.
func printTrailing(b *strings.Builder, c Comments) {
	for _, s := range c {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	b.WriteByte('\n')
}

func printDoc(b *strings.Builder, doc Comments, indent string) {
	for _, c := range doc {
		b.WriteString(indent)
		b.WriteString(c)
		b.WriteByte('\n')
	}
}

func printDefinition(b *strings.Builder, d *DefinitionDecl) {
	printDoc(b, d.Doc, "")
	b.WriteString("definition ")
	b.WriteString(d.Name)
	if len(d.Members) == 0 && len(d.EndComments) == 0 {
		b.WriteString(" {}")
		printTrailing(b, d.Comment)
		return
	}
	b.WriteString(" {\n")
	for i, m := range d.Members {
		if i > 0 && memberKind(m) != memberKind(d.Members[i-1]) {
			b.WriteByte('\n')
		}
		switch m := m.(type) {
		case *RelationDecl:
			printDoc(b, m.Doc, "\t")
			b.WriteString("\trelation ")
			b.WriteString(m.Name)
			b.WriteString(": ")
			for j, t := range m.Types {
				if j > 0 {
					b.WriteString(" | ")
				}
				b.WriteString(formatTypeRef(t))
			}
		case *PermissionDecl:
			printDoc(b, m.Doc, "\t")
			b.WriteString("\tpermission ")
			b.WriteString(m.Name)
			b.WriteString(" = ")
			printExpr(b, m.Expr)
		}
		switch m := m.(type) {
		case *RelationDecl:
			printTrailing(b, m.Comment)
		case *PermissionDecl:
			printTrailing(b, m.Comment)
		}
	}
	printDoc(b, d.EndComments, "\t")
	b.WriteString("}")
	printTrailing(b, d.Comment)
}

// formatTypeRef writes one allowed subject type as it appears in source.
func formatTypeRef(t *TypeRef) string {
	s := t.Type
	switch {
	case t.Wildcard:
		s += ":*"
	case t.Relation != "":
		s += "#" + t.Relation
	}
	switch {
	case t.Caveat != "" && t.Expiration:
		s += " with " + t.Caveat + " and expiration"
	case t.Caveat != "":
		s += " with " + t.Caveat
	case t.Expiration:
		s += " with expiration"
	}
	return s
}

func printExpr(b *strings.Builder, e ExprNode) {
	switch e := e.(type) {
	case *NilExpr:
		b.WriteString("nil")
	case *IdentExpr:
		b.WriteString(e.Name)
	case *ArrowExpr:
		printExpr(b, e.Left)
		if e.Func == "" {
			b.WriteString("->")
			b.WriteString(e.Right.Name)
		} else {
			b.WriteByte('.')
			b.WriteString(e.Func)
			b.WriteByte('(')
			b.WriteString(e.Right.Name)
			b.WriteByte(')')
		}
	case *BinaryExpr:
		printOperand(b, e.X, e.Op, false)
		switch e.Op {
		case PLUS:
			b.WriteString(" + ")
		case AMP:
			b.WriteString(" & ")
		default:
			b.WriteString(" - ")
		}
		printOperand(b, e.Y, e.Op, true)
	}
}

// printOperand parenthesises a binary operand whose operator differs from its
// parent's, and a right operand with the same operator (all operators are
// left-associative, so only the right side needs them to keep its shape).
func printOperand(b *strings.Builder, e ExprNode, parent Token, right bool) {
	if x, ok := e.(*BinaryExpr); ok && (x.Op != parent || right) {
		b.WriteByte('(')
		printExpr(b, e)
		b.WriteByte(')')
		return
	}
	printExpr(b, e)
}

func printCaveat(b *strings.Builder, c *CaveatDecl) {
	printDoc(b, c.Doc, "")
	b.WriteString("caveat ")
	b.WriteString(c.Name)
	b.WriteByte('(')
	for i, p := range c.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name)
		b.WriteByte(' ')
		printCaveatType(b, p.Type)
	}
	b.WriteString(") {\n\t")
	b.WriteString(c.Body)
	b.WriteString("\n}")
	printTrailing(b, c.Comment)
}

func printCaveatType(b *strings.Builder, t *CaveatType) {
	b.WriteString(t.Name)
	if len(t.Args) == 0 {
		return
	}
	b.WriteByte('<')
	for i, a := range t.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		printCaveatType(b, a)
	}
	b.WriteByte('>')
}
