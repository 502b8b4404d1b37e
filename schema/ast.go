package schema

// File is the syntax tree of one schema source. Declarations are kept in
// source order; Print writes them back in that order.
type File struct {
	Filename string
	Uses     []*UseDecl
	Decls    []Decl // *DefinitionDecl or *CaveatDecl
	// EndComments are the comments after the last declaration.
	EndComments Comments
}

// Decl is a top-level declaration: *DefinitionDecl or *CaveatDecl.
type Decl interface{ declNode() }

// Comments are raw comments, delimiters included, in source order. A Doc is
// written on the lines before a declaration; a Comment trails it on its last
// line.
type Comments []string

// UseDecl is `use flag`.
type UseDecl struct {
	Pos     Pos
	Doc     Comments
	Flag    string
	FlagPos Pos
	Comment Comments
}

// DefinitionDecl is `definition name { members }`.
type DefinitionDecl struct {
	Pos     Pos // of the keyword
	Doc     Comments
	Name    string
	NamePos Pos
	Members []Member // *RelationDecl or *PermissionDecl
	// EndComments are the comments between the last member and '}'.
	EndComments Comments
	Comment     Comments
}

// Member is *RelationDecl or *PermissionDecl.
type Member interface {
	memberNode()
	MemberName() (string, Pos)
	setComment(Comments)
}

// RelationDecl is `relation name: T | T:* | T#rel ...`.
type RelationDecl struct {
	Pos     Pos
	Doc     Comments
	Name    string
	NamePos Pos
	Types   []*TypeRef
	Comment Comments
}

// TypeRef is one alternative of a relation's type restriction.
type TypeRef struct {
	Pos         Pos
	Type        string // possibly tenant-prefixed: org/user
	Relation    string // "" for a plain type; "..." is normalised to ""
	RelationPos Pos
	Wildcard    bool
	Caveat      string // "" if none
	CaveatPos   Pos
	Expiration  bool
	ExpPos      Pos
}

// PermissionDecl is `permission name = expr`.
type PermissionDecl struct {
	Pos     Pos
	Doc     Comments
	Name    string
	NamePos Pos
	Expr    ExprNode
	Comment Comments
}

// CaveatDecl is `caveat name(params) { expression }`.
type CaveatDecl struct {
	Pos     Pos
	Doc     Comments
	Name    string
	NamePos Pos
	Params  []*CaveatParam
	Body    string // the CEL expression, surrounding white space trimmed
	BodyPos Pos    // of the first byte of Body
	Comment Comments
}

// CaveatParam is `name type`.
type CaveatParam struct {
	Pos  Pos
	Name string
	Type *CaveatType
}

// CaveatType is a caveat parameter type: `int`, `list<string>`, `map<any>`.
type CaveatType struct {
	Pos  Pos
	Name string
	Args []*CaveatType
}

// ExprNode is a permission expression in the syntax tree: *BinaryExpr,
// *IdentExpr, *ArrowExpr or *NilExpr. Parentheses leave no node: they only
// shape the tree.
type ExprNode interface {
	exprNode()
	Start() Pos
}

// BinaryExpr is `X op Y` with op PLUS (union), AMP (intersection) or MINUS
// (exclusion).
type BinaryExpr struct {
	X     ExprNode
	Op    Token
	OpPos Pos
	Y     ExprNode
}

// IdentExpr names a relation or permission of the same definition.
type IdentExpr struct {
	Pos  Pos
	Name string
}

// ArrowExpr is `Left->Right`, `Left.any(Right)` or `Left.all(Right)`. Left
// is an *IdentExpr, or an *ArrowExpr for a chained arrow (which the compiler
// rejects, as SpiceDB does).
type ArrowExpr struct {
	Left     ExprNode
	Func     string // "" for ->, "any" or "all"
	ArrowPos Pos
	Right    *IdentExpr
}

// NilExpr is `nil`.
type NilExpr struct{ Pos Pos }

func (*DefinitionDecl) declNode() {}
func (*CaveatDecl) declNode()     {}

func (*RelationDecl) memberNode()   {}
func (*PermissionDecl) memberNode() {}

// MemberName returns the relation's name and its position.
func (r *RelationDecl) MemberName() (string, Pos) { return r.Name, r.NamePos }

// MemberName returns the permission's name and its position.
func (p *PermissionDecl) MemberName() (string, Pos) { return p.Name, p.NamePos }

func (r *RelationDecl) setComment(c Comments)   { r.Comment = c }
func (p *PermissionDecl) setComment(c Comments) { p.Comment = c }

func (*BinaryExpr) exprNode() {}
func (*IdentExpr) exprNode()  {}
func (*ArrowExpr) exprNode()  {}
func (*NilExpr) exprNode()    {}

// Start returns the position of the expression's first token.
func (e *BinaryExpr) Start() Pos { return e.X.Start() }

// Start returns the identifier's position.
func (e *IdentExpr) Start() Pos { return e.Pos }

// Start returns the position of the arrow's left side.
func (e *ArrowExpr) Start() Pos { return e.Left.Start() }

// Start returns the position of `nil`.
func (e *NilExpr) Start() Pos { return e.Pos }
