package catalogtest

import (
	"testing"

	"github.com/kvsd/kvsd/internal/catalog"
)

// Run is the suite every catalog implementation passes: the stream records (TestStore), the
// fragment index (TestIndex), the state store (TestState) and the work claims (TestWorkClaims), each against a fresh catalog from
// open. open registers the catalog's cleanup with t.
func Run(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	t.Run("Streams", func(t *testing.T) {
		TestStore(t, func(t *testing.T) catalog.Streams { return open(t) })
	})
	t.Run("Index", func(t *testing.T) {
		TestIndex(t, func(t *testing.T) catalog.Index { return open(t) })
	})
	t.Run("State", func(t *testing.T) {
		TestState(t, func(t *testing.T) catalog.State { return open(t) })
	})
	t.Run("WorkClaims", func(t *testing.T) {
		TestWorkClaims(t, func(t *testing.T) Claimed { return open(t) })
	})
}
