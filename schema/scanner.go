package schema

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Scanner tokenizes schema source. It is a pull scanner: each Scan returns
// the next token; no goroutine, no channel. Like Go's, it turns a newline that
// follows a token able to end a statement into a SEMICOLON (literal "\n").
type Scanner struct {
	filename string
	src      string
	err      func(pos Pos, msg string)

	off        int // offset of the next unread byte
	line       int // line of off
	lineStart  int // offset of the first byte of line
	insertSemi bool
}

// Init prepares s to scan src. err, if non-nil, is called for each lexical
// error (unterminated comment, illegal character).
func (s *Scanner) Init(filename, src string, err func(pos Pos, msg string)) {
	*s = Scanner{filename: filename, src: src, err: err, line: 1}
}

func (s *Scanner) pos(off int) Pos {
	return Pos{Filename: s.filename, Line: s.line, Col: off - s.lineStart + 1, Offset: off}
}

func (s *Scanner) error(pos Pos, msg string) {
	if s.err != nil {
		s.err(pos, msg)
	}
}

func (s *Scanner) peek(i int) byte {
	if s.off+i < len(s.src) {
		return s.src[s.off+i]
	}
	return 0
}

// newline records that the byte at off is '\n'.
func (s *Scanner) newline(off int) {
	s.line++
	s.lineStart = off + 1
}

// Scan returns the next token, its position and its literal text (the
// identifier, the comment text including its delimiters, or the operator).
func (s *Scanner) Scan() (pos Pos, tok Token, lit string) {
	for s.off < len(s.src) {
		c := s.src[s.off]
		if c == '\n' {
			if s.insertSemi {
				s.insertSemi = false
				pos = s.pos(s.off)
				s.newline(s.off)
				s.off++
				return pos, SEMICOLON, "\n"
			}
			s.newline(s.off)
			s.off++
			continue
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' {
			s.off++
			continue
		}
		break
	}
	pos = s.pos(s.off)
	if s.off >= len(s.src) {
		if s.insertSemi {
			s.insertSemi = false
			return pos, SEMICOLON, "\n"
		}
		return pos, EOF, ""
	}
	start := s.off
	c := s.src[s.off]
	insertSemi := false
	switch {
	case isIdentByte(c) || c >= utf8.RuneSelf && s.isLetterAt(s.off):
		for s.off < len(s.src) && (isIdentByte(s.src[s.off]) || s.src[s.off] >= utf8.RuneSelf && s.isLetterAt(s.off)) {
			if s.src[s.off] >= utf8.RuneSelf {
				_, n := utf8.DecodeRuneInString(s.src[s.off:])
				s.off += n
			} else {
				s.off++
			}
		}
		lit = s.src[start:s.off]
		tok = IDENT
		if kw, ok := keywords[lit]; ok {
			tok = kw
		}
		insertSemi = true
	case c == '/' && s.peek(1) == '/':
		for s.off < len(s.src) && s.src[s.off] != '\n' {
			s.off++
		}
		// A line comment does not change whether the newline ends a statement.
		return pos, COMMENT, trimCR(s.src[start:s.off])
	case c == '/' && s.peek(1) == '*':
		s.off += 2
		closed := false
		for s.off < len(s.src) {
			if s.src[s.off] == '*' && s.peek(1) == '/' {
				s.off += 2
				closed = true
				break
			}
			if s.src[s.off] == '\n' {
				s.newline(s.off)
			}
			s.off++
		}
		if !closed {
			s.error(pos, "comment not terminated: missing */")
		}
		return pos, COMMENT, s.src[start:s.off]
	default:
		s.off++
		switch c {
		case ';':
			tok = SEMICOLON
		case '{':
			tok = LBRACE
		case '}':
			tok, insertSemi = RBRACE, true
		case '(':
			tok = LPAREN
		case ')':
			tok, insertSemi = RPAREN, true
		case '<':
			tok = LT
		case '>':
			tok, insertSemi = GT, true
		case ',':
			tok = COMMA
		case '|':
			tok = PIPE
		case '+':
			tok = PLUS
		case '&':
			tok = AMP
		case '/':
			tok = SLASH
		case '=':
			tok = ASSIGN
		case ':':
			tok = COLON
		case '#':
			tok = HASH
		case '*':
			tok, insertSemi = STAR, true
		case '-':
			tok = MINUS
			if s.peek(0) == '>' {
				s.off++
				tok = ARROW
			}
		case '.':
			tok = PERIOD
			if s.peek(0) == '.' && s.peek(1) == '.' {
				s.off += 2
				tok, insertSemi = ELLIPSIS, true
			}
		default:
			s.off = start
			r, n := utf8.DecodeRuneInString(s.src[s.off:])
			s.off += n
			tok = ILLEGAL
			if r == utf8.RuneError && n == 1 {
				s.error(pos, "invalid UTF-8 encoding")
			} else {
				s.error(pos, fmt.Sprintf("unexpected character %#U", r))
			}
		}
		lit = s.src[start:s.off]
	}
	s.insertSemi = insertSemi
	return pos, tok, lit
}

// ScanCaveatBody reads the raw text of a caveat expression. It must be called
// right after Scan returned the caveat's opening '{'. It returns the text up to
// the matching '}' (which it consumes), skipping braces inside CEL string
// literals and comments. ok is false, and an error has been reported, if the
// body is not closed.
func (s *Scanner) ScanCaveatBody() (pos Pos, body string, ok bool) {
	pos = s.pos(s.off)
	start := s.off
	depth := 0
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == '\n':
			s.newline(s.off)
			s.off++
		case c == '{':
			depth++
			s.off++
		case c == '}':
			if depth == 0 {
				body = s.src[start:s.off]
				s.off++
				s.insertSemi = true
				return pos, body, true
			}
			depth--
			s.off++
		case c == '/' && s.peek(1) == '/':
			for s.off < len(s.src) && s.src[s.off] != '\n' {
				s.off++
			}
		case c == '"' || c == '\'':
			raw := s.off > start && (s.src[s.off-1] == 'r' || s.src[s.off-1] == 'R')
			if !s.skipCELString(raw) {
				return pos, "", false
			}
		default:
			s.off++
		}
	}
	s.error(pos, "caveat expression not closed: missing '}'")
	return pos, "", false
}

// skipCELString skips a CEL string literal starting at s.off: '...', "...",
// quoted once or three times with ' or ", with backslash escapes unless raw.
func (s *Scanner) skipCELString(raw bool) bool {
	pos := s.pos(s.off)
	q := s.src[s.off]
	triple := s.peek(1) == q && s.peek(2) == q
	if triple {
		s.off += 3
	} else {
		s.off++
	}
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == '\\' && !raw:
			if s.peek(1) == '\n' {
				s.newline(s.off + 1)
			}
			s.off += 2
			continue
		case c == '\n':
			if !triple {
				s.error(pos, "string literal not terminated in caveat expression")
				return false
			}
			s.newline(s.off)
		case c == q:
			if !triple {
				s.off++
				return true
			}
			if s.peek(1) == q && s.peek(2) == q {
				s.off += 3
				return true
			}
		}
		s.off++
	}
	s.error(pos, "string literal not terminated in caveat expression")
	return false
}

func (s *Scanner) isLetterAt(off int) bool {
	r, _ := utf8.DecodeRuneInString(s.src[off:])
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func trimCR(s string) string {
	if len(s) > 0 && s[len(s)-1] == '\r' {
		return s[:len(s)-1]
	}
	return s
}
