package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The progress bar redraws one line (carriage returns, no newlines), reaches 100 %, and clear
// leaves the line blank for the summary.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := &progressBar{w: &out}
	p.update(0, 4e9)
	p.update(4e9, 4e9)
	require.NotContains(t, out.String(), "\n")
	require.Contains(t, out.String(), "[##############################] 100 % 4.00 GB of 4.00 GB")
	p.clear()
	require.True(t, strings.HasSuffix(out.String(), "\r"))
	var none *progressBar
	none.clear() // no terminal: nothing to clear
}
