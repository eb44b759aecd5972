package main

import (
	"encoding/json"
	"io"
	"text/tabwriter"
)

// emit prints v as indented JSON, or calls text to print it for people.
func emit(w io.Writer, g *globals, v any, text func(w io.Writer)) error {
	if g.json() {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
