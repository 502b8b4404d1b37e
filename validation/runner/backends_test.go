package runner

import "testing"

func backends(t *testing.T) []namedBackend {
	return []namedBackend{
		{"memory", func(t *testing.T) Backend { return Memory{} }},
	}
}
