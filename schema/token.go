package schema

import "fmt"

// Token is a lexical token of the schema language.
type Token int

// The tokens. Words such as `any`, `all`, `expiration` and `and` are
// contextual: the scanner returns them as IDENT and the parser gives them
// meaning only where the grammar expects them.
const (
	ILLEGAL Token = iota
	EOF
	COMMENT

	IDENT // user, org/team (segments are separate IDENT and SLASH tokens)

	SEMICOLON // ';' or a newline after a token that may end a statement
	LBRACE    // {
	RBRACE    // }
	LPAREN    // (
	RPAREN    // )
	LT        // <
	GT        // >
	COMMA     // ,
	PIPE      // |
	PLUS      // +
	MINUS     // -
	AMP       // &
	SLASH     // /
	ASSIGN    // =
	COLON     // :
	HASH      // #
	ELLIPSIS  // ...
	STAR      // *
	ARROW     // ->
	PERIOD    // .

	keywordBeg
	DEFINITION
	CAVEAT
	RELATION
	PERMISSION
	NIL
	WITH
	USE
	keywordEnd
)

var tokenNames = [...]string{
	ILLEGAL:    "illegal character",
	EOF:        "end of file",
	COMMENT:    "comment",
	IDENT:      "identifier",
	SEMICOLON:  "';' or newline",
	LBRACE:     "'{'",
	RBRACE:     "'}'",
	LPAREN:     "'('",
	RPAREN:     "')'",
	LT:         "'<'",
	GT:         "'>'",
	COMMA:      "','",
	PIPE:       "'|'",
	PLUS:       "'+'",
	MINUS:      "'-'",
	AMP:        "'&'",
	SLASH:      "'/'",
	ASSIGN:     "'='",
	COLON:      "':'",
	HASH:       "'#'",
	ELLIPSIS:   "'...'",
	STAR:       "'*'",
	ARROW:      "'->'",
	PERIOD:     "'.'",
	DEFINITION: "definition",
	CAVEAT:     "caveat",
	RELATION:   "relation",
	PERMISSION: "permission",
	NIL:        "nil",
	WITH:       "with",
	USE:        "use",
}

func (t Token) String() string {
	if t >= 0 && int(t) < len(tokenNames) && tokenNames[t] != "" {
		return tokenNames[t]
	}
	return fmt.Sprintf("token(%d)", int(t))
}

// IsKeyword reports whether t is a reserved word.
func (t Token) IsKeyword() bool { return t > keywordBeg && t < keywordEnd }

var keywords = map[string]Token{
	"definition": DEFINITION,
	"caveat":     CAVEAT,
	"relation":   RELATION,
	"permission": PERMISSION,
	"nil":        NIL,
	"with":       WITH,
	"use":        USE,
}

// Pos is a position in a source file. Line and Col are 1-based; Col counts
// bytes. Offset is the 0-based byte offset. The zero Pos is "unknown".
type Pos struct {
	Filename string
	Line     int
	Col      int
	Offset   int
}

// IsValid reports whether p is a known position.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string {
	s := p.Filename
	if p.IsValid() {
		if s != "" {
			s += ":"
		}
		s += fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	if s == "" {
		s = "-"
	}
	return s
}
