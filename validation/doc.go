// Package validation decodes SpiceDB validation files: YAML documents that
// carry a schema, a block of relationships, assertions about permission checks
// and an expected-relations map.
//
//	schema: |
//	  definition user {}
//	  definition document { relation viewer: user }
//	relationships: |
//	  document:readme#viewer@user:ana
//	assertions:
//	  assertTrue:
//	    - document:readme#viewer@user:ana
//	  assertFalse:
//	    - 'document:readme#viewer@user:bob with {"ip": "10.0.0.1"}'
//	validation:
//	  document:readme#viewer:
//	    - "[user:ana] is <document:readme#viewer>"
//
// Parse turns the text into typed values (tuple.Relationship, tuple.SubjectRef)
// and keeps the line of every element, so that a runner that executes a File
// against an engine can report a failure as file:line. The package does no
// evaluation and knows nothing of the engine or the store.
//
// Bad input is reported as an ErrorList of *Error, each naming file:line and
// what is wrong; Parse never panics.
package validation
