package schema

import (
	"fmt"
	"strings"
)

// Limits on schema source. Exceeding one is a positioned error, never a panic.
const (
	// MaxSourceSize is the largest schema source accepted, in bytes.
	MaxSourceSize = 4 << 20
	// MaxExprDepth bounds parenthesis nesting in a permission expression.
	MaxExprDepth = 64
	// MaxExprTerms bounds the number of operands in one permission expression.
	MaxExprTerms = 1024
	// MaxDefinitions bounds the number of definitions in a schema.
	MaxDefinitions = 10000
	// MaxCaveats bounds the number of caveats in a schema.
	MaxCaveats = 10000
	// MaxIdentifierLength bounds a name, tenant prefix included, in bytes.
	MaxIdentifierLength = 128
)

// Parse parses schema source into a syntax tree. It checks syntax and limits
// only; Compile does the semantic checks. On error it returns an ErrorList and
// no tree.
func Parse(filename, src string) (*File, error) {
	var errs errorSink
	errs.src = src
	f := parseFile(filename, src, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return f, nil
}

func parseFile(filename, src string, errs *errorSink) *File {
	if len(src) > MaxSourceSize {
		errs.add(Pos{Filename: filename, Line: 1, Col: 1}, fmt.Sprintf("schema source is %d bytes, more than the limit of %d", len(src), MaxSourceSize))
		return nil
	}
	p := &parser{errs: errs}
	p.sc.Init(filename, src, errs.add)
	p.next()
	return p.parseFile(filename)
}

type parser struct {
	sc   Scanner
	errs *errorSink

	pos  Pos
	tok  Token
	lit  string
	lead Comments // comments between the previous token and this one

	useExpiration bool // `use expiration` seen

	depth int // parenthesis nesting in the current expression
	terms int // operands in the current expression
}

func (p *parser) next() {
	p.lead = nil
	for {
		p.pos, p.tok, p.lit = p.sc.Scan()
		if p.tok != COMMENT {
			return
		}
		p.lead = append(p.lead, p.lit)
	}
}

func (p *parser) error(pos Pos, msg string) { p.errs.add(pos, msg) }

// found describes the current token for an error message.
func (p *parser) found() string {
	switch {
	case p.tok == IDENT:
		return fmt.Sprintf("identifier %q", p.lit)
	case p.tok == SEMICOLON && p.lit == "\n":
		return "newline"
	case p.tok == SEMICOLON:
		return "';'"
	case p.tok.IsKeyword():
		return fmt.Sprintf("keyword %q", p.lit)
	case p.tok == ILLEGAL:
		return fmt.Sprintf("%q", p.lit)
	}
	return p.tok.String()
}

func (p *parser) errorExpected(what string) {
	p.error(p.pos, fmt.Sprintf("expected %s, found %s", what, p.found()))
}

// expect consumes tok if it is current; otherwise it records an error and
// returns false without consuming, so that the caller can resynchronise.
func (p *parser) expect(tok Token) (Pos, bool) {
	pos := p.pos
	if p.tok != tok {
		p.errorExpected(tok.String())
		return pos, false
	}
	p.next()
	return pos, true
}

// isReserved reports whether an identifier is a word SpiceDB's lexer makes a
// keyword, so that it cannot name anything: `any` and `all` always (they are
// the arrow functions), `expiration` and `and` once `use expiration` is on.
func (p *parser) isReserved(lit string) bool {
	switch lit {
	case "any", "all":
		return true
	case "expiration", "and":
		return p.useExpiration
	}
	return false
}

// ident consumes an identifier used as a name (what names the role in
// messages); reserved words are refused.
func (p *parser) ident(what string) (string, Pos, bool) {
	if p.tok == IDENT && p.isReserved(p.lit) {
		p.error(p.pos, fmt.Sprintf("expected %s, found keyword %q (a reserved word cannot be a name)", what, p.lit))
		return "", p.pos, false
	}
	return p.word(what)
}

// word consumes any identifier, reserved or not.
func (p *parser) word(what string) (string, Pos, bool) {
	pos, lit := p.pos, p.lit
	if p.tok != IDENT {
		if p.tok.IsKeyword() {
			p.error(p.pos, fmt.Sprintf("expected %s, found keyword %q (a reserved word cannot be a name)", what, p.lit))
		} else {
			p.errorExpected(what)
		}
		return "", pos, false
	}
	if len(lit) > MaxIdentifierLength {
		p.error(pos, fmt.Sprintf("%s is %d bytes long, more than the limit of %d", what, len(lit), MaxIdentifierLength))
		return "", pos, false
	}
	p.next()
	return lit, pos, true
}

// typePath consumes `ident { / ident }`.
func (p *parser) typePath(what string) (string, Pos, bool) {
	name, pos, ok := p.ident(what)
	if !ok {
		return "", pos, false
	}
	for p.tok == SLASH {
		p.next()
		seg, _, ok := p.ident(what + " segment after '/'")
		if !ok {
			return "", pos, false
		}
		name += "/" + seg
	}
	if len(name) > MaxIdentifierLength {
		p.error(pos, fmt.Sprintf("%s %q is %d bytes long, more than the limit of %d", what, name, len(name), MaxIdentifierLength))
		return "", pos, false
	}
	return name, pos, true
}

// skipTo advances to the next token that can start or end a statement, so
// that one mistake yields one error.
func (p *parser) skipTo(stops ...Token) {
	for p.tok != EOF {
		for _, t := range stops {
			if p.tok == t {
				return
			}
		}
		p.next()
	}
}

func (p *parser) parseFile(filename string) *File {
	f := &File{Filename: filename}
	seenDecl := false
	defs, cavs := 0, 0
	for p.tok != EOF {
		doc := p.lead
		switch p.tok {
		case SEMICOLON:
			p.next()
		case USE:
			u := p.parseUse(doc)
			if u == nil {
				p.skipTo(SEMICOLON, DEFINITION, CAVEAT, USE)
				continue
			}
			if seenDecl {
				p.error(u.Pos, "`use` must come before any definition or caveat")
			}
			f.Uses = append(f.Uses, u)
			u.Comment = p.endTopLevel()
		case DEFINITION:
			seenDecl = true
			d := p.parseDefinition(doc)
			if d == nil {
				p.skipTo(DEFINITION, CAVEAT, USE)
				continue
			}
			defs++
			if defs == MaxDefinitions+1 {
				p.error(d.Pos, fmt.Sprintf("too many definitions: the limit is %d", MaxDefinitions))
			}
			f.Decls = append(f.Decls, d)
			d.Comment = p.endTopLevel()
		case CAVEAT:
			seenDecl = true
			c := p.parseCaveat(doc)
			if c == nil {
				p.skipTo(DEFINITION, CAVEAT, USE)
				continue
			}
			cavs++
			if cavs == MaxCaveats+1 {
				p.error(c.Pos, fmt.Sprintf("too many caveats: the limit is %d", MaxCaveats))
			}
			f.Decls = append(f.Decls, c)
			c.Comment = p.endTopLevel()
		default:
			p.errorExpected("`definition`, `caveat` or `use`")
			p.next()
			p.skipTo(DEFINITION, CAVEAT, USE)
		}
	}
	f.EndComments = p.lead
	return f
}

// endTopLevel checks that a top-level declaration is followed by a
// terminator or another declaration, and returns the comments trailing it on
// its last line.
func (p *parser) endTopLevel() Comments {
	switch p.tok {
	case SEMICOLON:
		trailing := p.lead
		p.next()
		return trailing
	case EOF, DEFINITION, CAVEAT, USE:
	default:
		p.errorExpected("newline or ';' after declaration")
		p.skipTo(DEFINITION, CAVEAT, USE)
	}
	return nil
}

func (p *parser) parseUse(doc Comments) *UseDecl {
	u := &UseDecl{Pos: p.pos, Doc: doc}
	p.next()
	flag, pos, ok := p.word("use flag")
	if !ok {
		return nil
	}
	switch flag {
	case "expiration":
		if p.useExpiration {
			p.error(pos, "duplicate `use expiration`")
			return nil
		}
		p.useExpiration = true
	case "typechecking", "self":
		p.error(pos, fmt.Sprintf("use flag %q is not supported by ambit; the supported flag is \"expiration\"", flag))
		return nil
	default:
		p.error(pos, fmt.Sprintf("unknown use flag %q: the supported flag is \"expiration\"", flag))
		return nil
	}
	u.Flag, u.FlagPos = flag, pos
	return u
}

func (p *parser) parseDefinition(doc Comments) *DefinitionDecl {
	d := &DefinitionDecl{Pos: p.pos, Doc: doc}
	p.next()
	var ok bool
	if d.Name, d.NamePos, ok = p.typePath("definition name"); !ok {
		return nil
	}
	if _, ok := p.expect(LBRACE); !ok {
		return nil
	}
	for p.tok != RBRACE && p.tok != EOF {
		doc := p.lead
		var m Member
		switch p.tok {
		case SEMICOLON:
			p.next()
			continue
		case RELATION:
			if r := p.parseRelation(doc); r != nil {
				m = r
			}
		case PERMISSION:
			if e := p.parsePermission(doc); e != nil {
				m = e
			}
		case DEFINITION, CAVEAT, USE:
			p.error(p.pos, fmt.Sprintf("expected '}' to close definition %q, found keyword %q", d.Name, p.lit))
			return nil
		default:
			p.errorExpected("`relation`, `permission` or '}'")
			p.next()
			p.skipTo(SEMICOLON, RBRACE, RELATION, PERMISSION, DEFINITION, CAVEAT)
			continue
		}
		if m == nil {
			p.skipTo(SEMICOLON, RBRACE, RELATION, PERMISSION, DEFINITION, CAVEAT)
			continue
		}
		d.Members = append(d.Members, m)
		// Each member ends with a newline or ';', as in SpiceDB; comments
		// before that terminator trail the member on its line.
		if p.tok == SEMICOLON {
			m.setComment(p.lead)
		} else {
			p.errorExpected("newline or ';' after " + memberKind(m))
			p.skipTo(SEMICOLON, RBRACE, RELATION, PERMISSION, DEFINITION, CAVEAT)
		}
	}
	d.EndComments = p.lead
	if _, ok := p.expect(RBRACE); !ok {
		return nil
	}
	return d
}

func memberKind(m Member) string {
	if _, ok := m.(*RelationDecl); ok {
		return "relation"
	}
	return "permission"
}

func (p *parser) parseRelation(doc Comments) *RelationDecl {
	r := &RelationDecl{Pos: p.pos, Doc: doc}
	p.next()
	var ok bool
	if r.Name, r.NamePos, ok = p.ident("relation name"); !ok {
		return nil
	}
	if _, ok := p.expect(COLON); !ok {
		return nil
	}
	for {
		t := p.parseTypeRef()
		if t == nil {
			return nil
		}
		r.Types = append(r.Types, t)
		if p.tok != PIPE {
			return r
		}
		p.next()
	}
}

func (p *parser) parseTypeRef() *TypeRef {
	t := &TypeRef{}
	var ok bool
	if t.Type, t.Pos, ok = p.typePath("subject type"); !ok {
		return nil
	}
	switch p.tok {
	case COLON:
		p.next()
		if _, ok := p.expect(STAR); !ok {
			return nil
		}
		t.Wildcard = true
	case HASH:
		p.next()
		t.RelationPos = p.pos
		switch p.tok {
		case ELLIPSIS:
			p.next() // T#... is the same as T
		case IDENT:
			if t.Relation, _, ok = p.ident("subject relation"); !ok {
				return nil
			}
		default:
			p.errorExpected("relation name or '...' after '#'")
			return nil
		}
	}
	if p.tok != WITH {
		return t
	}
	p.next()
	if p.tok == IDENT && p.lit == "expiration" {
		t.Expiration, t.ExpPos = true, p.pos
		p.next()
		return t
	}
	if t.Caveat, t.CaveatPos, ok = p.typePath("caveat name or `expiration` after `with`"); !ok {
		return nil
	}
	if p.tok == IDENT && p.lit == "and" {
		p.next()
		if p.tok != IDENT || p.lit != "expiration" {
			p.errorExpected("`expiration` after `and`")
			return nil
		}
		t.Expiration, t.ExpPos = true, p.pos
		p.next()
	}
	return t
}

func (p *parser) parsePermission(doc Comments) *PermissionDecl {
	e := &PermissionDecl{Pos: p.pos, Doc: doc}
	p.next()
	var ok bool
	if e.Name, e.NamePos, ok = p.ident("permission name"); !ok {
		return nil
	}
	if _, ok := p.expect(ASSIGN); !ok {
		return nil
	}
	p.depth, p.terms = 0, 0
	if e.Expr = p.parseExpr(); e.Expr == nil {
		return nil
	}
	return e
}

// Permission expressions, lowest precedence first, all left-associative.
// SpiceDB binds `+` tightest, then `&`, then `-`: `a - b + c` is `a - (b + c)`
// and `a & b + c` is `a & (b + c)`.
func (p *parser) parseExpr() ExprNode { return p.parseBinary(MINUS) }

func (p *parser) parseBinary(op Token) ExprNode {
	var sub func() ExprNode
	switch op {
	case MINUS:
		sub = func() ExprNode { return p.parseBinary(AMP) }
	case AMP:
		sub = func() ExprNode { return p.parseBinary(PLUS) }
	default:
		sub = p.parseOperand
	}
	x := sub()
	if x == nil {
		return nil
	}
	for p.tok == op {
		opPos := p.pos
		p.next()
		y := sub()
		if y == nil {
			return nil
		}
		x = &BinaryExpr{X: x, Op: op, OpPos: opPos, Y: y}
	}
	return x
}

func (p *parser) parseOperand() ExprNode {
	p.terms++
	if p.terms == MaxExprTerms+1 {
		p.error(p.pos, fmt.Sprintf("permission expression has more than %d operands", MaxExprTerms))
		return nil
	}
	switch p.tok {
	case LPAREN:
		lparen := p.pos
		p.depth++
		if p.depth > MaxExprDepth {
			p.error(lparen, fmt.Sprintf("permission expression nested more than %d parentheses deep", MaxExprDepth))
			return nil
		}
		p.next()
		x := p.parseExpr()
		if x == nil {
			return nil
		}
		if p.tok != RPAREN {
			p.error(p.pos, fmt.Sprintf("expected ')' to close '(' at %d:%d, found %s", lparen.Line, lparen.Col, p.found()))
			return nil
		}
		p.next()
		p.depth--
		return x
	case NIL:
		x := &NilExpr{Pos: p.pos}
		p.next()
		return x
	case IDENT:
		var x ExprNode
		name, pos, ok := p.ident("relation or permission name")
		if !ok {
			return nil
		}
		x = &IdentExpr{Pos: pos, Name: name}
		for p.tok == ARROW || p.tok == PERIOD {
			a := &ArrowExpr{Left: x, ArrowPos: p.pos}
			if p.tok == ARROW {
				p.next()
			} else {
				p.next()
				if p.tok != IDENT || (p.lit != "any" && p.lit != "all") {
					p.errorExpected("`any` or `all` after '.'")
					return nil
				}
				a.Func = p.lit
				p.next()
				if _, ok := p.expect(LPAREN); !ok {
					return nil
				}
			}
			name, pos, ok := p.ident("relation or permission name after arrow")
			if !ok {
				return nil
			}
			a.Right = &IdentExpr{Pos: pos, Name: name}
			if a.Func != "" {
				if _, ok := p.expect(RPAREN); !ok {
					return nil
				}
			}
			x = a
		}
		return x
	}
	p.errorExpected("relation or permission name, `nil` or '('")
	return nil
}

func (p *parser) parseCaveat(doc Comments) *CaveatDecl {
	c := &CaveatDecl{Pos: p.pos, Doc: doc}
	p.next()
	var ok bool
	if c.Name, c.NamePos, ok = p.typePath("caveat name"); !ok {
		return nil
	}
	if _, ok := p.expect(LPAREN); !ok {
		return nil
	}
	for {
		prm := &CaveatParam{}
		if prm.Name, prm.Pos, ok = p.ident("caveat parameter name"); !ok {
			return nil
		}
		if prm.Type = p.parseCaveatType(0); prm.Type == nil {
			return nil
		}
		c.Params = append(c.Params, prm)
		if p.tok != COMMA {
			break
		}
		p.next()
	}
	if _, ok := p.expect(RPAREN); !ok {
		return nil
	}
	if p.tok != LBRACE {
		p.errorExpected("'{' to start the caveat expression")
		return nil
	}
	pos, body, ok := p.sc.ScanCaveatBody()
	if !ok {
		p.tok = EOF
		return nil
	}
	// Trim white space, moving BodyPos to the first byte kept.
	trimmed := strings.TrimLeft(body, " \t\r\n\f\v")
	for _, ch := range body[:len(body)-len(trimmed)] {
		pos.Offset++
		pos.Col++
		if ch == '\n' {
			pos.Line++
			pos.Col = 1
		}
	}
	c.Body = strings.TrimRight(trimmed, " \t\r\n\f\v")
	c.BodyPos = pos
	if c.Body == "" {
		p.error(p.pos, fmt.Sprintf("caveat %q has an empty expression", c.Name))
		p.next()
		return nil
	}
	p.next()
	return c
}

// maxCaveatTypeDepth bounds list<list<...>> nesting.
const maxCaveatTypeDepth = 8

func (p *parser) parseCaveatType(depth int) *CaveatType {
	if depth > maxCaveatTypeDepth {
		p.error(p.pos, fmt.Sprintf("caveat parameter type nested more than %d deep", maxCaveatTypeDepth))
		return nil
	}
	t := &CaveatType{}
	var ok bool
	if t.Name, t.Pos, ok = p.word("caveat parameter type"); !ok {
		return nil
	}
	if p.tok != LT {
		return t
	}
	p.next()
	for {
		arg := p.parseCaveatType(depth + 1)
		if arg == nil {
			return nil
		}
		t.Args = append(t.Args, arg)
		if p.tok != COMMA {
			break
		}
		p.next()
	}
	if _, ok := p.expect(GT); !ok {
		return nil
	}
	return t
}
