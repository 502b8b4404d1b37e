package runner

import "testing"

func backends(t *testing.T) []namedBackend {
	return []namedBackend{
		{"memory", func(t *testing.T) Backend { return Memory{} }},
		{"badger", func(t *testing.T) Backend {
			b, err := NewBadger(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Error(err)
				}
			})
			return b
		}},
	}
}
